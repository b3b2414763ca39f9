#include "backoff.h"

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

long relais_backoff_ms(int attempt, long initial_ms, long max_ms, uint64_t *rng)
{
    if (initial_ms < 1) initial_ms = 1;
    if (max_ms < initial_ms) max_ms = initial_ms;
    if (attempt < 1) attempt = 1;
    long cap = initial_ms;
    for (int i = 1; i < attempt && cap < max_ms; i++)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    if (cap > max_ms) cap = max_ms;
    long half = cap / 2;
    long span = cap - half;
    return half + (long)(xorshift64(rng) % (uint64_t)(span + 1));
}
