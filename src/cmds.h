/*
 * cmds.h - the sub-commands of the ststest binary. Each parses its own options
 * (thin: the work is in the modules) and returns a sysexits status (common/err.h).
 */
#ifndef STS_CMDS_H
#define STS_CMDS_H

int sts_cmd_send(int argc, char **argv);  /* ststest send [options] RCPT... */
int sts_cmd_check(int argc, char **argv); /* ststest check [options] DOMAIN... */
int sts_cmd_world(int argc, char **argv); /* ststest world [options] SCENARIO */
int sts_cmd_run(int argc, char **argv);   /* ststest run [options] PATH... */
int sts_cmd_lint(int argc, char **argv);  /* ststest lint FILE|- */
int sts_cmd_report(int argc, char **argv); /* ststest report [options] */

#endif
