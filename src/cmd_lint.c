/* cmd_lint.c - `ststest lint` (stub until the policy parser lands). */
#include "src/cmd_stub.h"
#include "src/cmds.h"
int sts_cmd_lint(int argc, char **argv) { return sts_cmd_not_built("lint", "lint FILE|-", argc, argv); }
