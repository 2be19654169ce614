/*
** lineedit.h: the REPL's line editor, a small interface over libedit's
** readline-compatible callback API driven by the libuv loop (stdin is
** watched with a uv_poll_t, so the loop never blocks in a read while the
** prompt waits), with a plain line-reading path when stdin or stdout is
** not a terminal, or loom was built without libedit.
**
** One line editor per process: libedit's callbacks carry no user data.
*/
#ifndef LOOM_LINEEDIT_H
#define LOOM_LINEEDIT_H

#include <uv.h>

typedef struct lineedit lineedit;

typedef struct lineedit_hooks {
  /* A line read, without its newline, malloc'd (the hook frees it); NULL
  ** at the end of input. Always called from a loop callback, never from
  ** inside lineedit_read. */
  void (*line)(char *line, void *ud);
  /* Completion candidates for the word before the cursor: a malloc'd,
  ** NULL-terminated array of malloc'd strings (lineedit frees them), or
  ** NULL. May be NULL. */
  char **(*complete)(const char *word, void *ud);
  /* Called before each read at a terminal prompt, so what happened
  ** meanwhile (a Ctrl-C) is dealt with before the next key. May be NULL. */
  void (*before_read)(void *ud);
  void *ud;
} lineedit_hooks;

/* Starts a line editor on stdin; NULL if out of memory. Nothing is read
** until lineedit_read. */
lineedit *lineedit_open(uv_loop_t *loop, const lineedit_hooks *hooks);

/* 1 when lines are edited with libedit on a terminal. */
int lineedit_is_editor(lineedit *le);
/* 1 when stdin is a terminal (edited or not). */
int lineedit_is_tty(lineedit *le);

/* Shows prompt and reads one line (delivered to hooks->line). */
void lineedit_read(lineedit *le, const char *prompt);

/* Stops reading: drops the half-typed text and moves to a new line (Ctrl-C
** at the prompt). Call lineedit_read again for a new prompt. */
void lineedit_abort(lineedit *le);

/* 1 while a prompt is on a terminal, waiting for a line: output must
** then go between lineedit_hide and lineedit_show. */
int lineedit_visible(lineedit *le);
void lineedit_hide(lineedit *le);  /* clears the prompt line */
void lineedit_show(lineedit *le);  /* redraws prompt and typed text */

/* History: loads path (libedit's own format) and appends each entry to
** it as it comes, creating it 0600. Without an editor, does nothing. */
void lineedit_history(lineedit *le, const char *path);
void lineedit_history_add(lineedit *le, const char *entry);

/* Puts the terminal back as it was and closes the handles; the memory
** goes once the loop has run their close callbacks. */
void lineedit_close(lineedit *le);

/* Puts the terminal back as it was at lineedit_open; safe in a signal
** handler (for an exit from there). */
void lineedit_restore_terminal(void);

#endif
