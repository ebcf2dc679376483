/* The magics that need nothing but the interpreter (builtin.c), and their
 * registry entries as initializer lists, so that every registry (the
 * actmax magics, the unit tests' test registry) lists them the same way:
 *   const mg_magic table[] = {MG_CORE_MAGICS, ..., MG_DIAGNOSTIC_MAGICS, {0}}; */
#ifndef ACTMAX_BUILTIN_H
#define ACTMAX_BUILTIN_H

#include "magic.h"

mg_status mg_magic_lsmagic(mg_call *c);
mg_status mg_magic_help_run(mg_call *c);
void mg_magic_help_complete(const mg_complete_ctx *cx, mg_completions *out);
mg_status mg_magic_set(mg_call *c);
mg_status mg_magic_sleep(mg_call *c);
mg_status mg_magic_echo(mg_call *c);
mg_status mg_magic_clear(mg_call *c);

/* The entries are laid out by hand: clang-format reads a macro body as code. */
/* clang-format off */

/* %lsmagic, %help and %set. */
#define MG_CORE_MAGICS                                                                          \
    {.name = "lsmagic", .kinds = MG_LINE, .summary = "List the magics.", .run = mg_magic_lsmagic}, \
    {.name = "help",                                                                            \
     .kinds = MG_LINE,                                                                          \
     .summary = "Show how cells work, or one magic's help and keys.",                           \
     .help = "%help alone explains the cell syntax; %help NAME (or NAME?, %NAME?) shows\n"      \
             "one magic's usage, keys, types and defaults.",                                    \
     .positional = "NAME",                                                                      \
     .positional_doc = "a magic name, with or without % / %%",                                  \
     .run = mg_magic_help_run,                                                                  \
     .complete = mg_magic_help_complete},                                                       \
    {.name = "set",                                                                             \
     .kinds = MG_LINE,                                                                          \
     .summary = "Set session defaults; alone, list them.",                                      \
     .help = "%set key=value ... changes defaults for the rest of the session; a magic's\n"     \
             "key of the same name uses them when not given on its line.",                      \
     .keys = mg_settings_table,                                                                 \
     .run = mg_magic_set}

/* %sleep, %echo and %clear: diagnostics the tests drive the protocol with. */
#define MG_DIAGNOSTIC_MAGICS                                                                    \
    {.name = "sleep",                                                                           \
     .kinds = MG_LINE,                                                                          \
     .summary = "Wait, checking for interrupts (diagnostic).",                                  \
     .help = "Waits in steps of 50 ms, serving the control channel and stopping early on an\n"  \
             "interrupt. Used by the tests to interrupt a long-running command.",               \
     .keys = mg_keys_sleep,                                                                     \
     .run = mg_magic_sleep},                                                                    \
    {.name = "echo",                                                                            \
     .kinds = MG_LINE | MG_CELL,                                                                \
     .summary = "Show text through one of the outputs (diagnostic).",                           \
     .help = "%echo TEXT shows TEXT; %%echo shows the cell body. to= picks the output:\n"       \
             "a stream, display_data (with display_id, and update=true to replace it),\n"       \
             "execute_result, or the pager.",                                                   \
     .positional = "TEXT",                                                                      \
     .positional_doc = "the text to show (line magic)",                                         \
     .keys = mg_keys_echo,                                                                      \
     .run = mg_magic_echo},                                                                     \
    {.name = "clear",                                                                           \
     .kinds = MG_LINE,                                                                          \
     .summary = "Clear the cell's output (diagnostic).",                                        \
     .keys = mg_keys_clear,                                                                     \
     .run = mg_magic_clear}

/* clang-format on */

#endif
