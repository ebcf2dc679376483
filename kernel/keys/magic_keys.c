/* The typed keys of every magic and of the session settings: data only, no
 * dependency, so every front (the kernel, the command line, the Python
 * module) accepts the same keys with the same types, ranges and defaults. */
#include <string.h>

#include "magic_keys.h"

/* Session defaults (%set key=value). A magic key with the same name and
 * type takes its value from here when it is not given on the line. */
const mg_key mg_settings_table[] = {
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed for runs that draw random numbers"),
    MG_KEY_ENUM("device", "auto", "auto|cpu|cuda", "where the engine computes"),
    MG_KEY_BOOL("verbose", "false", "print extra figures (live updates sent, timings)"),
    MG_KEY_INT("steps", "256", 1, 100000, "optimization steps of %maximize"),
    MG_KEY_STRING("lr", "auto", "learning rate of %maximize: auto (the optimizer's) or a number"),
    MG_KEY_INT("batch", "1", 1, 256, "images optimized together by %maximize"),
    MG_KEY_ENUM("optimizer", "auto", "auto|adam|nadam|sgd", "optimizer of %maximize"),
    MG_KEY_ENUM("param", "fft", "fft|pixel|maco", "image parameterization of %maximize"),
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

const mg_key mg_keys_model[] = {
    MG_KEY_STRING("input", NULL,
                  "input shape without batch, CxHxW (e.g. 3x224x224); needed "
                  "for a model without actmax.json metadata"),
    MG_KEY_ENUM("device", "auto", "auto|cpu|cuda", "where the model runs (auto: cuda if present)"),
    MG_KEY_END,
};

const mg_key mg_keys_maximize[] = {
    MG_KEY_INT("steps", "256", 1, 100000, "optimization steps"),
    MG_KEY_STRING("lr", "auto",
                  "learning rate: auto (the engine's: 0.05 for fft and pixel, 1.0 for maco) or "
                  "a number from 1e-06 to 100"),
    MG_KEY_INT("batch", "1", 1, 256, "images optimized together (diversity needs 2 or more)"),
    MG_KEY_INT("size", NULL, 8, 2048, "image side in pixels (default: the model's input size)"),
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed (noise, transforms)"),
    MG_KEY_ENUM("optimizer", "auto", "auto|adam|nadam|sgd",
                "optimizer; auto: Adam for fft and pixel, NAdam for maco"),
    MG_KEY_FLOAT("momentum", "0", 0, 0.999, "SGD momentum"),
    MG_KEY_ENUM("param", "fft", "fft|pixel|maco",
                "parameterization: Fourier (1/f scaled), pixels, or maco (phase only, "
                "magnitude fixed, random crops)"),
    MG_KEY_BOOL("decorrelate", "true", "colour decorrelation (3-channel models)"),
    MG_KEY_FLOAT("decay_power", "1", 0, 4, "FFT 1/f^decay scaling"),
    MG_KEY_BOOL("transforms", "true", "transformation robustness (pad, jitter, scale, rotate)"),
    MG_KEY_INT("pad", "-1", -1, 512, "padding in pixels; -1: 12 px at 224, scaled"),
    MG_KEY_INT("jitter", "-1", -1, 512, "jitter in pixels; -1: 8 px at 224, scaled"),
    MG_KEY_FLOAT("scale_min", "0.9", 0.1, 10, "smallest random scale"),
    MG_KEY_FLOAT("scale_max", "1.1", 0.1, 10, "largest random scale"),
    MG_KEY_FLOAT("rotate", "10", 0, 180, "random rotation in degrees, +-"),
    MG_KEY_INT("crops", "6", 1, 256, "maco: random crops of each image per step"),
    MG_KEY_FLOAT("crop_max", "1", 0.01, 1,
                 "maco: crop side at the first step, a fraction of the canvas side"),
    MG_KEY_FLOAT("crop_min", "1", 0.01, 1,
                 "maco: crop side at the last step, a fraction of the canvas side"),
    MG_KEY_FLOAT("noise", "0.03", 0, 10, "maco: noise added to each crop"),
    MG_KEY_FLOAT("contrast", "3", 0.01, 100, "maco: factor before the sigmoid"),
    MG_KEY_FLOAT("l1", "0", 0, 1e6, "weight of the L1 penalty mean|x-0.5|"),
    MG_KEY_FLOAT("l2", "0", 0, 1e6, "weight of the L2 penalty mean (x-0.5)^2"),
    MG_KEY_FLOAT("tv", "0", 0, 1e6, "weight of the total variation penalty"),
    MG_KEY_FLOAT("blur", "0", 0, 1e6, "weight of the blur penalty"),
    MG_KEY_STRING("diversity", "0",
                  "batch diversity (batch >= 2): WEIGHT on the objective's first layer, or "
                  "LAYER:WEIGHT, e.g. diversity=conv1:1.0"),
    MG_KEY_STRING("init", "noise",
                  "initial image: noise, a PNG file path, or dataset:INDEX (an item of the "
                  "model's dataset, test split)"),
    MG_KEY_FLOAT("init_std", "0.01", 0, 10, "scale of the initial noise"),
    MG_KEY_FLOAT("accent", "0", 0, 1e6,
                 "feature accentuation: weight keeping the image close to init= (a PNG or "
                 "dataset:INDEX)"),
    MG_KEY_STRING("thresholds", "", "steps to snapshot and mark on the plot, e.g. 16,64"),
    MG_KEY_INT("image_every", "0", 0, 100000, "live image every k steps; 0: about 16 per run"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_BOOL(
        "code", "false",
        "also print the run as a runnable PyTorch script (%save RUN path=run.py writes it)"),
    MG_KEY_END,
};

const mg_key mg_keys_examples[] = {
    MG_KEY_INT("k", "9", 1, 64, "how many top examples to show"),
    MG_KEY_ENUM("split", "test", "test|train", "dataset split"),
    MG_KEY_INT("limit", "0", 0, 100000000, "read at most this many items (text: tokens); 0: all"),
    MG_KEY_STRING("path", "", "text models: a text file to read instead of the held-out corpus"),
    MG_KEY_STRING("data", "",
                  "image models: the images to read instead of the model's dataset: a folder of "
                  "PNG files (one subfolder per class gives labels), a .npy or a .pt file"),
    MG_KEY_INT("window", "0", 0, 4096, "text models: tokens per window; 0: 64 or the context"),
    MG_KEY_INT("context", "0", 0, 4095,
               "text models: least tokens before each scored token; 0: half the window"),
    MG_KEY_INT("batch", NULL, 1, 1000000, "text models: windows per forward (default 256)"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_END,
};

const mg_key mg_keys_tokens[] = {
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
    MG_KEY_INT("position", "-1", -4096, 4095,
               "sweep: the position searched, negative from the end"),
    MG_KEY_STRING("init", "",
                  "start prompt as text of exactly len tokens (soft/pez: its embeddings)"),
    MG_KEY_BOOL("retokenize", "true", "gcg: only prompts that re-encode to themselves"),
    MG_KEY_BOOL("attribution", "true", "per-position drop if each token is swapped"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_BOOL("verbose", "false", "also print how many live updates were sent"),
    MG_KEY_END,
};

const mg_key mg_keys_save[] = {
    MG_KEY_STRING("path", NULL,
                  "file to write, its format by extension: .npy/.pt (images or token ids), "
                  ".png, .csv/.json (curves), .txt (prompt), .py (PyTorch script)"),
    MG_KEY_ENUM("what", "image", "image|plot",
                "PNG: the result image (grid for a batch) or the curve"),
    MG_KEY_BOOL("each", "false", "PNG of a batch: one file per image, NAME-0.png, NAME-1.png, ..."),
    MG_KEY_END,
};

const mg_key mg_keys_check[] = {
    MG_KEY_INT("run", NULL, 1, 1000000, "the run to grade (default: the last one)"),
    MG_KEY_STRING("file", NULL,
                  "the checks file (default: $ACTMAX_CHECKS, else the installed checks.json)"),
    MG_KEY_STRING("data", "",
                  "images ranked by the dataset checks instead of the model's dataset (a PNG "
                  "folder, a .npy or .pt file; as %examples data=)"),
    MG_KEY_END,
};

const mg_key mg_keys_sleep[] = {
    MG_KEY_FLOAT("seconds", "1", 0, 86400, "how long to wait"),
    MG_KEY_END,
};

const mg_key mg_keys_tokenize[] = {
    MG_KEY_END,
};

const mg_key mg_keys_echo[] = {
    MG_KEY_ENUM("to", "stdout", "stdout|stderr|display|result|page", "which output to use"),
    MG_KEY_STRING("display_id", NULL, "display id (to=display), for a later update=true"),
    MG_KEY_BOOL("update", "false", "update the display named by display_id instead of adding one"),
    MG_KEY_END,
};

const mg_key mg_keys_clear[] = {
    MG_KEY_BOOL("wait", "false", "clear only when the next output arrives"),
    MG_KEY_END,
};

const mg_key mg_keys_neuron[] = {
    MG_KEY_INT("image_steps", "128", 1, 100000,
               "images: optimization steps of the optimized batch"),
    MG_KEY_INT("images", "4", 1, 64, "images: optimized images, made diverse together"),
    MG_KEY_FLOAT("diversity", "1", 0, 1e6, "images: weight of the batch diversity term"),
    MG_KEY_INT("prompt_len", "6", 1, 4096, "text: tokens of the searched prompt"),
    MG_KEY_INT("text_steps", "32", 1, 100000, "text: GCG steps of the prompt search"),
    MG_KEY_INT("seed", "0", 0, 4294967295.0, "random seed of the optimization"),
    MG_KEY_INT("top", "8", 1, 64, "top dataset examples shown"),
    MG_KEY_INT("quantiles", "4", 0, 20, "quantile bands of the distribution to draw examples from"),
    MG_KEY_INT("per_band", "3", 1, 20, "examples per quantile band"),
    MG_KEY_INT("bins", "50", 1, 1000, "histogram bins"),
    MG_KEY_INT("limit", "0", 0, 100000000, "scan at most this many items (text: tokens); 0: all"),
    MG_KEY_STRING("path", "", "text models: a text file to scan instead of the held-out corpus"),
    MG_KEY_INT("lens_k", "10", 1, 100, "text: tokens shown by the logit lens and the sweep"),
    MG_KEY_FLOAT("updates_per_s", "4", 0.1, 100, "most live display updates per second"),
    MG_KEY_END,
};

const mg_key *mg_magic_keys(const char *magic)
{
    static const struct {
        const char *name;
        const mg_key *keys;
    } k_tables[] = {
        {"model", mg_keys_model},   {"maximize", mg_keys_maximize}, {"examples", mg_keys_examples},
        {"tokens", mg_keys_tokens}, {"save", mg_keys_save},         {"sleep", mg_keys_sleep},
        {"echo", mg_keys_echo},     {"tokenize", mg_keys_tokenize}, {"clear", mg_keys_clear},
        {"set", mg_settings_table}, {"check", mg_keys_check},       {"neuron", mg_keys_neuron},
    };
    for (size_t i = 0; i < sizeof k_tables / sizeof k_tables[0]; i++)
        if (strcmp(k_tables[i].name, magic) == 0)
            return k_tables[i].keys;
    return NULL;
}
