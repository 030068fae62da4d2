/* cmd_world.c - `ststest world` (stub until the world lands). */
#include "src/cmd_stub.h"
#include "src/cmds.h"
int sts_cmd_world(int argc, char **argv) { return sts_cmd_not_built("world", "world [options] SCENARIO", argc, argv); }
