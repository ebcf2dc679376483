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
    MG_KEY_BOOL("verbose", "false", "print extra figures (live updates sent, timings)"),
    MG_KEY_INT("steps", "256", 1, 100000, "optimization steps of %maximize"),
    MG_KEY_FLOAT("lr", "0.05", 1e-6, 100, "learning rate of %maximize"),
    MG_KEY_INT("batch", "1", 1, 256, "images optimized together by %maximize"),
    MG_KEY_ENUM("optimizer", "adam", "adam|sgd", "optimizer of %maximize"),
    MG_KEY_ENUM("param", "fft", "fft|pixel", "image parameterization of %maximize"),
    MG_KEY_BOOL("transforms", "true", "transformation robustness (pad, jitter, scale, rotate)"),
    MG_KEY_INT("k", "9", 1, 64, "dataset examples shown by %examples"),
    MG_KEY_ENUM("split", "test", "test|train", "dataset split read by %examples"),
    MG_KEY_ENUM("method", "soft", "soft|pez|gcg|sweep", "prompt search of %tokens"),
    MG_KEY_INT("len", "8", 1, 4096, "prompt tokens of %tokens"),
    MG_KEY_ENUM("metric", "cosine", "cosine|l2", "projection metric of %tokens"),
    MG_KEY_FLOAT("fluency", "0", 0, 1e6, "weight of %tokens' cross-entropy penalty"),
    MG_KEY_INT("restarts", "1", 1, 1000, "independent %tokens searches, the best kept"),
    MG_KEY_END,
};

static const mg_key MODEL_KEYS[] = {
    MG_KEY_STRING("input", NULL, "input shape without batch, CxHxW (e.g. 3x224x224); needed "
                                 "for a model without actmax.json metadata"),
    MG_KEY_ENUM("device", "auto", "auto|cpu|cuda", "where the model runs (auto: cuda if present)"),
    MG_KEY_END,
};

static const mg_key MAXIMIZE_KEYS[] = {
    MG_KEY_INT("steps", "256", 1, 100000, "optimization steps"),
    MG_KEY_FLOAT("lr", "0.05", 1e-6, 100, "learning rate"),
    MG_KEY_INT("batch", "1", 1, 256, "images optimized together (diversity needs 2 or more)"),
    MG_KEY_INT("size", NULL, 8, 2048, "image side in pixels (default: the model's input size)"),
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed (noise, transforms)"),
    MG_KEY_ENUM("optimizer", "adam", "adam|sgd", "optimizer"),
    MG_KEY_FLOAT("momentum", "0", 0, 0.999, "SGD momentum"),
    MG_KEY_ENUM("param", "fft", "fft|pixel", "parameterization: Fourier (1/f scaled) or pixels"),
    MG_KEY_BOOL("decorrelate", "true", "colour decorrelation (3-channel models)"),
    MG_KEY_FLOAT("decay_power", "1", 0, 4, "FFT 1/f^decay scaling"),
    MG_KEY_BOOL("transforms", "true", "transformation robustness (pad, jitter, scale, rotate)"),
    MG_KEY_INT("pad", "-1", -1, 512, "padding in pixels; -1: 12 px at 224, scaled"),
    MG_KEY_INT("jitter", "-1", -1, 512, "jitter in pixels; -1: 8 px at 224, scaled"),
    MG_KEY_FLOAT("scale_min", "0.9", 0.1, 10, "smallest random scale"),
    MG_KEY_FLOAT("scale_max", "1.1", 0.1, 10, "largest random scale"),
    MG_KEY_FLOAT("rotate", "10", 0, 180, "random rotation in degrees, +-"),
    MG_KEY_FLOAT("l1", "0", 0, 1e6, "weight of the L1 penalty mean|x-0.5|"),
    MG_KEY_FLOAT("l2", "0", 0, 1e6, "weight of the L2 penalty mean (x-0.5)^2"),
    MG_KEY_FLOAT("tv", "0", 0, 1e6, "weight of the total variation penalty"),
    MG_KEY_FLOAT("blur", "0", 0, 1e6, "weight of the blur penalty"),
    MG_KEY_FLOAT("diversity", "0", 0, 1e6, "weight of the batch diversity term (batch >= 2)"),
    MG_KEY_STRING("init", "noise", "initial image: noise, or a PNG file path"),
    MG_KEY_FLOAT("init_std", "0.01", 0, 10, "scale of the initial noise"),
    MG_KEY_STRING("thresholds", "", "steps to snapshot and mark on the plot, e.g. 16,64"),
    MG_KEY_INT("image_every", "0", 0, 100000, "live image every k steps; 0: about 16 per run"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_END,
};

static const mg_key EXAMPLES_KEYS[] = {
    MG_KEY_INT("k", "9", 1, 64, "how many top examples to show"),
    MG_KEY_ENUM("split", "test", "test|train", "dataset split"),
    MG_KEY_INT("limit", "0", 0, 100000000, "read at most this many items; 0: all"),
    MG_KEY_STRING("path", "", "text models: a text file to read instead of the held-out corpus"),
    MG_KEY_INT("window", "0", 0, 4096, "text models: tokens per window; 0: 64 or the context"),
    MG_KEY_INT("batch", NULL, 1, 1000000, "text models: windows per forward (default 256)"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_END,
};

static const mg_key TOKENS_KEYS[] = {
    MG_KEY_ENUM("method", "soft", "soft|pez|gcg|sweep",
                "soft: Adam on embeddings, then nearest tokens; pez: projected gradient; "
                "gcg: greedy coordinate gradient; sweep: every token at one position"),
    MG_KEY_INT("len", "8", 0, 4096, "prompt tokens (1..the model's context)"),
    MG_KEY_INT("steps", "256", 1, 100000, "optimization steps (sweep: ignored)"),
    MG_KEY_FLOAT("lr", "0.05", 1e-6, 100, "Adam step of soft and pez"),
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed; restart r uses seed + r"),
    MG_KEY_INT("restarts", "1", 1, 1000, "independent searches; the best score is kept"),
    MG_KEY_ENUM("metric", "cosine", "cosine|l2", "projection to the nearest token"),
    MG_KEY_FLOAT("snap", "0", 0, 1e6, "soft: weight of the distance-to-nearest-token penalty"),
    MG_KEY_FLOAT("fluency", "0", 0, 1e6, "weight of the prompt's cross-entropy penalty (nats)"),
    MG_KEY_INT("topk", "64", 1, 100000, "gcg: candidate tokens per position"),
    MG_KEY_INT("nearest", "5", 1, 1000, "soft and pez: nearest tokens shown per position"),
    MG_KEY_INT("batch", NULL, 1, 1000000,
               "gcg: swaps tried per step (default 128); sweep: sequences per forward"),
    MG_KEY_INT("position", "-1", -4096, 4095, "sweep: the position searched, negative from the end"),
    MG_KEY_STRING("init", "", "start prompt as text of exactly len tokens (soft/pez: its embeddings)"),
    MG_KEY_BOOL("retokenize", "true", "gcg: only prompts that re-encode to themselves"),
    MG_KEY_BOOL("attribution", "true", "per-position drop if each token is swapped"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_END,
};

static const mg_key SAVE_KEYS[] = {
    MG_KEY_STRING("path", NULL, "file to write: PNG, or the prompt text of a %tokens run"),
    MG_KEY_ENUM("what", "image", "image|plot", "the result image (grid for a batch) or the curve"),
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
    {.name = "model",
     .kinds = MG_LINE,
     .summary = "Load a model (built-in name or TorchScript file); alone, describe it.",
     .help = "%model fashion-cnn loads a built-in model, searched as NAME.pt in\n"
             "$ACTMAX_MODEL_PATH, ~/.local/share/actmax/models, the build tree and the install\n"
             "share folder; a path loads that file. A failed load keeps the previous model.",
     .positional = "NAME|PATH",
     .positional_doc = "built-in model name or TorchScript file",
     .keys = MODEL_KEYS,
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
     .keys = MAXIMIZE_KEYS,
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
     .keys = TOKENS_KEYS,
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
     .keys = EXAMPLES_KEYS,
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
     .keys = SAVE_KEYS,
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
