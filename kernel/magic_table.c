/* THE registration table: every magic and every session setting is listed
 * here and nowhere else. To add a magic: write `mg_status f(mg_call *c)`
 * (magics.h), give it a key list in magic_keys.c and one entry in mg_magic_table.
 * Keys are typed and checked before the cell runs; inside f read them with
 * mg_int / mg_float / mg_bool / mg_string / mg_enum and write output with
 * the mg_sink_* helpers (see docs/kernel.md). */

#include "magic_keys.h"
#include "magics.h"

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
    {.name = "model",
     .kinds = MG_LINE,
     .summary = "Load a model (built-in name or TorchScript file); alone, describe it.",
     .help = "%model fashion-cnn loads a built-in model, searched as NAME.pt in\n"
             "$ACTMAX_MODEL_PATH, ~/.local/share/actmax/models, the build tree and the install\n"
             "share folder; a path loads that file. A failed load keeps the previous model.",
     .positional = "NAME|PATH",
     .positional_doc = "built-in model name or TorchScript file",
     .keys = mg_keys_model,
     .run = mg_magic_model,
     .needs_engine = true},
    {.name = "layers",
     .kinds = MG_LINE,
     .summary = "Table of the model's layers: paths, types, output shapes, parameters.",
     .help = "%layers lists every layer; %layers conv lists those containing 'conv';\n"
             "%layers 'conv*.bn' filters with a glob.",
     .positional = "PATTERN",
     .positional_doc = "substring or glob (* ? [])",
     .run = mg_magic_layers,
     .complete = mg_magic_objective_complete,
     .needs_engine = true},
    {.name = "maximize",
     .kinds = MG_LINE,
     .summary = "Optimize an image that maximizes an objective, shown live.",
     .help = "%maximize conv2[5]                  channel 5 of conv2, averaged over positions\n"
             "%maximize fc[\"Sneaker\"] steps=256 batch=4 diversity=1e-2\n"
             "%maximize -conv2[5]                 minimize (inhibition)\n"
             "%maximize conv2[5] - 0.5*conv2[7]   objective algebra\n"
             "Keys left out take their %set defaults. The run is kept (%runs, %show, %save).",
     .positional = "OBJECTIVE",
     .positional_doc = "LAYER[index, ...] terms with + - * by numbers",
     .positional_required = true,
     .keys = mg_keys_maximize,
     .run = mg_magic_maximize,
     .complete = mg_magic_objective_complete,
     .needs_engine = true},
    {.name = "tokens",
     .kinds = MG_LINE,
     .summary = "Optimize a prompt of a text model for an objective, shown live.",
     .help = "%tokens blocks.2.mlp.act[-1, 123] len=8       soft prompt, projected to tokens\n"
             "%tokens blocks.2.mlp.act[-1, 123] method=gcg len=8 steps=200\n"
             "%tokens blocks.2.mlp.act[:, 123] fluency=0.1  mean over positions, readable\n"
             "Shows the prompt coloured by activation, soft vs projected values (retention),\n"
             "nearest tokens per position, attribution, and the curves. Kept in %runs.",
     .positional = "OBJECTIVE",
     .positional_doc = "LAYER[position, unit] or objective algebra, on the text model",
     .positional_required = true,
     .keys = mg_keys_tokens,
     .run = mg_magic_tokens,
     .complete = mg_magic_objective_complete,
     .needs_engine = true},
    {.name = "examples",
     .kinds = MG_LINE,
     .summary = "Top-k dataset images for an objective (the observation approach).",
     .help = "%examples conv2[5] k=16 ranks the model's dataset (Fashion-MNIST) by the\n"
             "objective and shows the top k with their activations, next to the latest\n"
             "%maximize image of the same objective. Forms: LAYER, LAYER[c], LAYER[c, y, x],\n"
             "LAYER[\"Label\"], each optionally negated (lowest activations).\n"
             "On a text model (tiny-lm): the top-k windows of the held-out corpus, every\n"
             "token coloured by its activation, the corpus maximum, and the latest %tokens\n"
             "prompt of the same objective beside it: %examples blocks.2.mlp.act[:, 123] k=10",
     .positional = "OBJECTIVE",
     .positional_doc = "LAYER[index, ...], optionally negated",
     .positional_required = true,
     .keys = mg_keys_examples,
     .run = mg_magic_examples,
     .complete = mg_magic_objective_complete,
     .needs_engine = true},
    {.name = "runs",
     .kinds = MG_LINE,
     .summary = "Table of this session's runs.",
     .run = mg_magic_runs,
     .needs_engine = true},
    {.name = "show",
     .kinds = MG_LINE,
     .summary = "Show a run again (image or prompt, summary, tables, curve).",
     .positional = "RUN",
     .positional_doc = "last (default) or a run number",
     .run = mg_magic_show,
     .needs_engine = true},
    {.name = "save",
     .kinds = MG_LINE,
     .summary = "Save a run's image (or curve) as PNG; a %tokens run's prompt as text.",
     .help = "%save last path=sneaker.png; %save 2 path=curve.png what=plot\n"
             "For a %tokens run, %save writes the prompt (the bytes it decodes to) to the\n"
             "file, and what=plot the curve as PNG.",
     .positional = "RUN",
     .positional_doc = "last (default) or a run number",
     .keys = mg_keys_save,
     .run = mg_magic_save,
     .needs_engine = true},
    {.name = "device",
     .kinds = MG_LINE,
     .summary = "Show or set the device for the next %model (same as %set device=).",
     .positional = "DEVICE",
     .positional_doc = "auto, cpu or cuda",
     .run = mg_magic_device},
    {.name = "seed",
     .kinds = MG_LINE,
     .summary = "Show or set the default random seed (same as %set seed=).",
     .positional = "SEED",
     .positional_doc = "an integer 0..4294967295",
     .run = mg_magic_seed},
    {.name = "sleep",
     .kinds = MG_LINE,
     .summary = "Wait, checking for interrupts (diagnostic).",
     .help = "Waits in steps of 50 ms, serving the control channel and stopping early on an\n"
             "interrupt. Used by the tests to interrupt a long-running command.",
     .keys = mg_keys_sleep,
     .run = mg_magic_sleep},
    {.name = "echo",
     .kinds = MG_LINE | MG_CELL,
     .summary = "Show text through one of the outputs (diagnostic).",
     .help = "%echo TEXT shows TEXT; %%echo shows the cell body. to= picks the output:\n"
             "a stream, display_data (with display_id, and update=true to replace it),\n"
             "execute_result, or the pager.",
     .positional = "TEXT",
     .positional_doc = "the text to show (line magic)",
     .keys = mg_keys_echo,
     .run = mg_magic_echo},
    {.name = "clear",
     .kinds = MG_LINE,
     .summary = "Clear the cell's output (diagnostic).",
     .keys = mg_keys_clear,
     .run = mg_magic_clear},
    {0},
};
