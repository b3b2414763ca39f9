/*
 * backoff.h - retry delays: exponential with "equal jitter".
 * attempt 1 -> around initial, doubling each time, capped at max; the delay
 * is uniformly drawn in [cap/2, cap] so that many failed deliveries do not
 * come back at the same moment, and no delay is shorter than half the cap.
 */
#ifndef RELAIS_BACKOFF_H
#define RELAIS_BACKOFF_H
#include <stdint.h>

/* `rng` is a caller-owned xorshift state (any non-zero seed). */
long relais_backoff_ms(int attempt, long initial_ms, long max_ms, uint64_t *rng);
#endif
