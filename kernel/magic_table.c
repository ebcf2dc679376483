/* THE registration table: every magic and every session setting is listed
 * here and nowhere else. To add a magic: write `mg_status f(mg_call *c)`
 * (magics.h), give it a key list below and one entry in mg_magic_table.
 * Keys are typed and checked before the cell runs; inside f read them with
 * mg_int / mg_float / mg_bool / mg_string / mg_enum and write output with
 * the mg_sink_* helpers (see docs/kernel.md). */

#include "magics.h"

/* Session defaults (%set key=value). A magic key with the same name and
 * type takes its value from here when it is not given on the line. */
const mg_key mg_settings_table[] = {
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed for runs that draw random numbers"),
    MG_KEY_ENUM("device", "auto", "auto|cpu|cuda", "where the engine computes"),
    MG_KEY_BOOL("verbose", "false", "print progress while long commands run"),
    MG_KEY_END,
};

static const mg_key SLEEP_KEYS[] = {
    MG_KEY_FLOAT("seconds", "1", 0, 86400, "how long to wait"),
    MG_KEY_END,
};

static const mg_key ECHO_KEYS[] = {
    MG_KEY_ENUM("to", "stdout", "stdout|stderr|display|result|page", "which output to use"),
    MG_KEY_STRING("display_id", NULL, "display id (to=display), for a later update=true"),
    MG_KEY_BOOL("update", "false", "update the display named by display_id instead of adding one"),
    MG_KEY_END,
};

static const mg_key CLEAR_KEYS[] = {
    MG_KEY_BOOL("wait", "false", "clear only when the next output arrives"),
    MG_KEY_END,
};

const mg_magic mg_magic_table[] = {
    {.name = "lsmagic",
     .kinds = MG_LINE,
     .summary = "List the magics.",
     .run = mg_magic_lsmagic},
    {.name = "help",
     .kinds = MG_LINE,
     .summary = "Show how cells work, or one magic's help and keys.",
     .help = "%help alone explains the cell syntax; %help NAME (or NAME?, %NAME?) shows\n"
             "one magic's usage, keys, types and defaults.",
     .positional = "NAME",
     .positional_doc = "a magic name, with or without % / %%",
     .run = mg_magic_help_run,
     .complete = mg_magic_help_complete},
    {.name = "set",
     .kinds = MG_LINE,
     .summary = "Set session defaults; alone, list them.",
     .help = "%set key=value ... changes defaults for the rest of the session; a magic's\n"
             "key of the same name uses them when not given on its line.",
     .keys = mg_settings_table,
     .run = mg_magic_set},
    {.name = "sleep",
     .kinds = MG_LINE,
     .summary = "Wait, checking for interrupts (diagnostic).",
     .help = "Waits in steps of 50 ms, serving the control channel and stopping early on an\n"
             "interrupt. Used by the tests to interrupt a long-running command.",
     .keys = SLEEP_KEYS,
     .run = mg_magic_sleep},
    {.name = "echo",
     .kinds = MG_LINE | MG_CELL,
     .summary = "Show text through one of the outputs (diagnostic).",
     .help = "%echo TEXT shows TEXT; %%echo shows the cell body. to= picks the output:\n"
             "a stream, display_data (with display_id, and update=true to replace it),\n"
             "execute_result, or the pager.",
     .positional = "TEXT",
     .positional_doc = "the text to show (line magic)",
     .keys = ECHO_KEYS,
     .run = mg_magic_echo},
    {.name = "clear",
     .kinds = MG_LINE,
     .summary = "Clear the cell's output (diagnostic).",
     .keys = CLEAR_KEYS,
     .run = mg_magic_clear},
    {0},
};
