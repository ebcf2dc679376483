/* The engine's C API as the kernel sees it: the table libactmax hands out
 * through am_get_api (actmax.h), resolved when the engine is loaded. The
 * kernel never links libactmax or libtorch, and it names no engine function
 * itself: the table's layout and its list come from actmax.h alone. */
#ifndef ACTMAX_ENGINE_API_H
#define ACTMAX_ENGINE_API_H

#include "actmax.h"

typedef am_api mg_engine_api;

/* The engine's table once mg_engine_load succeeded, else NULL. */
const mg_engine_api *mg_engine(void);

#endif
