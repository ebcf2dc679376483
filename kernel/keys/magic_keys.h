/* Typed keys: the key=value options of every magic, as data. Depends on
 * nothing, so any front can link it (library actmax_magic_keys) and accept
 * exactly the keys, types, ranges and defaults the kernel accepts. */
#ifndef ACTMAX_MAGIC_KEYS_H
#define ACTMAX_MAGIC_KEYS_H

typedef enum mg_type { MG_T_INT, MG_T_FLOAT, MG_T_STRING, MG_T_BOOL, MG_T_ENUM } mg_type;

typedef struct mg_key {
    const char *name;
    mg_type type;
    const char *def;     /* default, written as a user would type it; NULL: none */
    double lo, hi;       /* inclusive range (int, float) */
    const char *choices; /* enum: "auto|cpu|cuda" */
    const char *doc;     /* one line */
} mg_key;

#define MG_KEY_INT(n, def, lo, hi, doc)                                                            \
    {                                                                                              \
        n, MG_T_INT, def, lo, hi, NULL, doc                                                        \
    }
#define MG_KEY_FLOAT(n, def, lo, hi, doc)                                                          \
    {                                                                                              \
        n, MG_T_FLOAT, def, lo, hi, NULL, doc                                                      \
    }
#define MG_KEY_STRING(n, def, doc)                                                                 \
    {                                                                                              \
        n, MG_T_STRING, def, 0, 0, NULL, doc                                                       \
    }
#define MG_KEY_BOOL(n, def, doc)                                                                   \
    {                                                                                              \
        n, MG_T_BOOL, def, 0, 0, NULL, doc                                                         \
    }
#define MG_KEY_ENUM(n, def, choices, doc)                                                          \
    {                                                                                              \
        n, MG_T_ENUM, def, 0, 0, choices, doc                                                      \
    }
#define MG_KEY_END                                                                                 \
    {                                                                                              \
        0                                                                                          \
    }

/* Session defaults (%set key=value), ended by MG_KEY_END. */
extern const mg_key mg_settings_table[];

/* Each magic's keys, ended by MG_KEY_END. */
extern const mg_key mg_keys_model[];
extern const mg_key mg_keys_maximize[];
extern const mg_key mg_keys_examples[];
extern const mg_key mg_keys_tokens[];
extern const mg_key mg_keys_save[];
extern const mg_key mg_keys_check[];
extern const mg_key mg_keys_sleep[];
extern const mg_key mg_keys_echo[];
extern const mg_key mg_keys_tokenize[];
extern const mg_key mg_keys_clear[];
extern const mg_key mg_keys_neuron[];

/* The keys of the magic named magic ("maximize", "set", ...), NULL if none. */
const mg_key *mg_magic_keys(const char *magic);

#endif
