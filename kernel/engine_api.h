/* The engine's C API as a table of function pointers, resolved with dlsym
 * when libactmax is loaded. Each pointer's type comes from actmax.h itself
 * (__typeof__), so a changed signature is a compile error here, and a
 * symbol missing from the library is a load error naming it, not a crash.
 * The kernel never links libactmax or libtorch. */
#ifndef ACTMAX_ENGINE_API_H
#define ACTMAX_ENGINE_API_H

#include "actmax.h"

/* Every actmax.h function the kernel calls. */
#define MG_ENGINE_FUNCS(X)                                                                         \
    X(am_strerror)                                                                                 \
    X(am_version)                                                                                  \
    X(am_tensor_release)                                                                           \
    X(am_tensor_numel)                                                                             \
    X(am_model_load)                                                                               \
    X(am_model_free)                                                                               \
    X(am_model_error)                                                                              \
    X(am_model_note)                                                                               \
    X(am_model_kind)                                                                               \
    X(am_model_device)                                                                             \
    X(am_model_input_shape)                                                                        \
    X(am_model_normalization)                                                                      \
    X(am_model_num_labels)                                                                         \
    X(am_model_label)                                                                              \
    X(am_model_dataset)                                                                            \
    X(am_model_num_layers)                                                                         \
    X(am_model_layer)                                                                              \
    X(am_model_tap)                                                                                \
    X(am_model_objective)                                                                          \
    X(am_model_objective_positions)                                                                \
    X(am_options_default)                                                                          \
    X(am_run_new)                                                                                  \
    X(am_run_free)                                                                                 \
    X(am_run_error)                                                                                \
    X(am_run_cancelled)                                                                            \
    X(am_run_steps)                                                                                \
    X(am_run_images)                                                                               \
    X(am_run_curve)                                                                                \
    X(am_run_num_terms)                                                                            \
    X(am_run_term_name)                                                                            \
    X(am_run_term_curve)                                                                           \
    X(am_run_final)                                                                                \
    X(am_run_num_snapshots)                                                                        \
    X(am_run_snapshot)                                                                             \
    X(am_run_seconds)                                                                              \
    X(am_model_tokenizer)                                                                          \
    X(am_tokenizer_load_json)                                                                      \
    X(am_tokenizer_free)                                                                           \
    X(am_tokenizer_errmsg)                                                                         \
    X(am_tokenizer_encode)                                                                         \
    X(am_tokenizer_decode)                                                                         \
    X(am_tokenizer_token_bytes)                                                                    \
    X(am_text_options_default)                                                                     \
    X(am_text_run_new)                                                                             \
    X(am_text_run_free)                                                                            \
    X(am_text_run_error)                                                                           \
    X(am_text_run_cancelled)                                                                       \
    X(am_text_run_steps)                                                                           \
    X(am_text_run_seconds)                                                                         \
    X(am_text_run_tokens)                                                                          \
    X(am_text_run_text)                                                                            \
    X(am_text_run_roundtrip)                                                                       \
    X(am_text_run_activation)                                                                      \
    X(am_text_run_xent)                                                                            \
    X(am_text_run_soft_activation)                                                                 \
    X(am_text_run_retention)                                                                       \
    X(am_text_run_nearest)                                                                         \
    X(am_text_run_curve)                                                                           \
    X(am_text_run_xent_curve)                                                                      \
    X(am_text_run_attribution)                                                                     \
    X(am_text_examples_new)                                                                        \
    X(am_text_examples_free)                                                                       \
    X(am_text_examples_error)                                                                      \
    X(am_text_examples_scanned)                                                                    \
    X(am_text_examples_cancelled)                                                                  \
    X(am_text_examples_count)                                                                      \
    X(am_text_examples_max)                                                                        \
    X(am_text_examples_get)

typedef struct mg_engine_api {
#define MG_ENGINE_FIELD(f) __typeof__(&f) f;
    MG_ENGINE_FUNCS(MG_ENGINE_FIELD)
#undef MG_ENGINE_FIELD
} mg_engine_api;

/* The resolved table once mg_engine_load succeeded, else NULL. */
const mg_engine_api *mg_engine(void);

#endif
