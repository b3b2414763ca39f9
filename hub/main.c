/* main.c - the relais binary. Everything is in cli.c (part of relais_core). */
#include "cli.h"
int main(int argc, char **argv) { return relais_cli_main(argc, argv); }
