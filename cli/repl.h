/*
** repl.h: the loom REPL (see repl.c), as main.c starts it.
*/
#ifndef LOOM_REPL_H
#define LOOM_REPL_H

#include <lua.h>

#include "loom.h"

/* Starts the REPL from inside the main task (L is its thread): shows the
** first prompt and returns; the loop then reads and runs lines until the
** end of input. Returns 0, or -1 if out of memory (nothing started). */
int repl_start(lua_State *L, loom_t *lm);

/* Whether repl_start ran (the command then exits 0 at the end of input). */
int repl_started(void);

/* Puts the terminal back if the REPL still holds it (before an exit that
** did not come from the end of input, such as os.exit). */
void repl_shutdown(void);

#endif
