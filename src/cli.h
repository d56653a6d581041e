/* cli.h -- the subcommands of the mrflow program (not part of libmrflow). */
#ifndef MRF_CLI_H
#define MRF_CLI_H

int mrf__cli_gen(int argc, char **argv);
int mrf__cli_validate(int argc, char **argv);
int mrf__cli_report(int argc, char **argv);

#endif
