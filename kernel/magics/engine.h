/* The engine's C API as the magics see it: the table libactmax hands out
 * through am_get_api (actmax.h), resolved when the engine is loaded. The
 * kernel never links libactmax or libtorch, and it names no engine function
 * itself: the table's layout and its list come from actmax.h alone. */
#ifndef ACTMAX_ENGINE_API_H
#define ACTMAX_ENGINE_API_H

#include "actmax.h"

typedef am_api mg_engine_api;

/* The engine's table once mg_engine_load succeeded, else NULL. */
const mg_engine_api *mg_engine(void);

/* Loads libactmax with dlopen on first use; 0, or -1 with *err. It is the
 * prepare hook of every magic that needs the engine. */
int mg_engine_load(char **err);
void *mg_engine_handle(void);

#endif
