/* cli.h - the `relais` command line (hub/cli.c); main.c only calls this. */
#ifndef RELAIS_CLI_H
#define RELAIS_CLI_H
int relais_cli_main(int argc, char **argv);
#endif
