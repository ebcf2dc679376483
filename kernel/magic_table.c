/* THE registration table: every magic and every session setting is listed
 * here and nowhere else. To add a magic: write `am_status f(am_call *c)`
 * (magics.h), give it a key list below and one entry in am_magic_table.
 * Keys are typed and checked before the cell runs; inside f read them with
 * am_int / am_float / am_bool / am_string / am_enum and write output with
 * the am_sink_* helpers (see docs/kernel.md). */

#include "magics.h"

/* Session defaults (%set key=value). A magic key with the same name and
 * type takes its value from here when it is not given on the line. */
const am_key am_settings_table[] = {
    AM_KEY_INT("seed", "0", 0, 4294967295.0, "random seed for runs that draw random numbers"),
    AM_KEY_ENUM("device", "auto", "auto|cpu|cuda", "where the engine computes"),
    AM_KEY_BOOL("verbose", "false", "print progress while long commands run"),
    AM_KEY_END,
};

static const am_key SLEEP_KEYS[] = {
    AM_KEY_FLOAT("seconds", "1", 0, 86400, "how long to wait"),
    AM_KEY_END,
};

static const am_key ECHO_KEYS[] = {
    AM_KEY_ENUM("to", "stdout", "stdout|stderr|display|result|page", "which output to use"),
    AM_KEY_STRING("display_id", NULL, "display id (to=display), for a later update=true"),
    AM_KEY_BOOL("update", "false", "update the display named by display_id instead of adding one"),
    AM_KEY_END,
};

static const am_key CLEAR_KEYS[] = {
    AM_KEY_BOOL("wait", "false", "clear only when the next output arrives"),
    AM_KEY_END,
};

const am_magic am_magic_table[] = {
    {.name = "lsmagic",
     .kinds = AM_LINE,
     .summary = "List the magics.",
     .run = am_magic_lsmagic},
    {.name = "help",
     .kinds = AM_LINE,
     .summary = "Show how cells work, or one magic's help and keys.",
     .help = "%help alone explains the cell syntax; %help NAME (or NAME?, %NAME?) shows\n"
             "one magic's usage, keys, types and defaults.",
     .positional = "NAME",
     .positional_doc = "a magic name, with or without % / %%",
     .run = am_magic_help_run,
     .complete = am_magic_help_complete},
    {.name = "set",
     .kinds = AM_LINE,
     .summary = "Set session defaults; alone, list them.",
     .help = "%set key=value ... changes defaults for the rest of the session; a magic's\n"
             "key of the same name uses them when not given on its line.",
     .keys = am_settings_table,
     .run = am_magic_set},
    {.name = "sleep",
     .kinds = AM_LINE,
     .summary = "Wait, checking for interrupts (diagnostic).",
     .help = "Waits in steps of 50 ms, serving the control channel and stopping early on an\n"
             "interrupt. Used by the tests to interrupt a long-running command.",
     .keys = SLEEP_KEYS,
     .run = am_magic_sleep},
    {.name = "echo",
     .kinds = AM_LINE | AM_CELL,
     .summary = "Show text through one of the outputs (diagnostic).",
     .help = "%echo TEXT shows TEXT; %%echo shows the cell body. to= picks the output:\n"
             "a stream, display_data (with display_id, and update=true to replace it),\n"
             "execute_result, or the pager.",
     .positional = "TEXT",
     .positional_doc = "the text to show (line magic)",
     .keys = ECHO_KEYS,
     .run = am_magic_echo},
    {.name = "clear",
     .kinds = AM_LINE,
     .summary = "Clear the cell's output (diagnostic).",
     .keys = CLEAR_KEYS,
     .run = am_magic_clear},
    {0},
};
