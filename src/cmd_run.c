/* cmd_run.c - `ststest run` (stub until the runner lands). */
#include "src/cmd_stub.h"
#include "src/cmds.h"
int sts_cmd_run(int argc, char **argv) { return sts_cmd_not_built("run", "run [options] PATH...", argc, argv); }
