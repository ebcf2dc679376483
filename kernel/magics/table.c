/* THE registration table: every magic and every session setting is listed
 * here and nowhere else. To add a magic: write `mg_status f(mg_call *c)`
 * (magics.h), give it a key list in magic_keys.c and one entry in MAGICS.
 * Keys are typed and checked before the cell runs; inside f read them with
 * mg_int / mg_float / mg_bool / mg_string / mg_enum and write output with
 * the mg_sink_* helpers (see docs/kernel.md). */

#include "builtin.h"
#include "engine.h"
#include "magic_keys.h"
#include "magics.h"
#include "session.h"

static const mg_magic MAGICS[] = {
    MG_CORE_MAGICS,
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
     .prepare = mg_engine_load},
    {.name = "layers",
     .kinds = MG_LINE,
     .summary = "Table of the model's layers: paths, types, output shapes, parameters.",
     .help = "%layers lists every layer; %layers conv lists those containing 'conv';\n"
             "%layers 'conv*.bn' filters with a glob.",
     .positional = "PATTERN",
     .positional_doc = "substring or glob (* ? [])",
     .run = mg_magic_layers,
     .complete = mg_magic_objective_complete,
     .prepare = mg_engine_load},
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
     .prepare = mg_engine_load},
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
     .prepare = mg_engine_load},
    {.name = "tokenize",
     .kinds = MG_LINE | MG_CELL,
     .summary = "Show how the text model's tokenizer cuts a text: ids and pieces.",
     .help = "%tokenize \"The cat sat\"      the ids and pieces of a text (quote spaces)\n"
             "%%tokenize                   the cell's body is the text (newlines kept)\n"
             "The count is what len= of %tokens means for that text as init=.",
     .positional = "TEXT",
     .positional_doc = "the text to cut into tokens",
     .keys = mg_keys_tokenize,
     .run = mg_magic_tokenize,
     .prepare = mg_engine_load},
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
     .prepare = mg_engine_load},
    {.name = "runs",
     .kinds = MG_LINE,
     .summary = "Table of this session's runs.",
     .run = mg_magic_runs,
     .prepare = mg_engine_load},
    {.name = "show",
     .kinds = MG_LINE,
     .summary = "Show a run again (image or prompt, summary, tables, curve).",
     .positional = "RUN",
     .positional_doc = "last (default) or a run number",
     .run = mg_magic_show,
     .prepare = mg_engine_load},
    {.name = "save",
     .kinds = MG_LINE,
     .summary = "Save a run as data, by extension: .npy/.pt, .png, .csv/.json, .txt, .py.",
     .help = "%save last path=run.npy   images (B, C, H, W) float32 (.pt: torch.load)\n"
             "%save last path=run.png   display image (grid; each=true: one per image)\n"
             "%save 2 path=curves.csv   curves, total and per term (.json: with options)\n"
             "%save 2 path=curve.png what=plot; %save last path=run.py (PyTorch script)\n"
             "A %tokens run: .npy/.pt token ids (1, T), .txt the prompt, .csv/.json curves.",
     .positional = "RUN",
     .positional_doc = "last (default) or a run number",
     .keys = mg_keys_save,
     .run = mg_magic_save,
     .prepare = mg_engine_load},
    {.name = "neuron",
     .kinds = MG_LINE,
     .summary = "One unit's dashboard: optimized inputs, dataset examples, histogram, lens.",
     .help = "%neuron conv2[5]                      images: a diverse optimized batch, the top\n"
             "                                     test images, quantile bands, the histogram\n"
             "                                     with the optimum marked, class means\n"
             "%neuron blocks.1.mlp.act[-1, 42]     text: the best GCG prompt, the single-token\n"
             "                                     sweep, top corpus tokens in context, bands,\n"
             "                                     the histogram, the logit lens\n"
             "Modest by default (steps=128, text_steps=32); the keys change it.",
     .positional = "OBJECTIVE",
     .positional_doc = "a unit, e.g. conv2[5] or blocks.1.mlp.act[-1, 42]",
     .positional_required = true,
     .keys = mg_keys_neuron,
     .run = mg_magic_neuron,
     .complete = mg_magic_objective_complete,
     .prepare = mg_engine_load},
    {.name = "check",
     .kinds = MG_LINE,
     .summary = "Grade a run against an exercise of the checks file: PASS, or FAIL with a hint.",
     .help = "%check lists the exercises; %check sandal-channel grades the last run,\n"
             "%check sandal-channel run=3 another. Exercises are data (JSON: model, objective\n"
             "pattern, options, thresholds, hint) in share/actmax/checks.json, or the file\n"
             "given by file= or $ACTMAX_CHECKS, which a teacher extends without touching C.",
     .positional = "NAME",
     .positional_doc = "the exercise's name (none: list them)",
     .keys = mg_keys_check,
     .run = mg_magic_check,
     .prepare = mg_engine_load},
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
    MG_DIAGNOSTIC_MAGICS,
    {0},
};

static const mg_registry REGISTRY = {
    .magics = MAGICS,
    .settings = mg_settings_table,
    .state_new = mg_session_new,
    .state_free = mg_session_free,
    .inspect = mg_session_inspect,
};

const mg_registry *mg_actmax_registry(void)
{
    return &REGISTRY;
}
