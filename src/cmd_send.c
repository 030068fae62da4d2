/* cmd_send.c - `ststest send` and `ststest check` (stub until the sender lands). */
#include "src/cmd_stub.h"
#include "src/cmds.h"
int sts_cmd_send(int argc, char **argv) { return sts_cmd_not_built("send", "send [options] RCPT...", argc, argv); }
int sts_cmd_check(int argc, char **argv) { return sts_cmd_not_built("check", "check [options] DOMAIN...", argc, argv); }
