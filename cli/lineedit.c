/*
** lineedit.c: the REPL's line editor (see lineedit.h). With libedit on a
** terminal it uses the readline-compatible callback mode under a
** uv_poll_t on fd 0; otherwise it reads whole lines with getline, after a
** poll on a terminal, or in the idle phase of the loop (a pipe or a file,
** as lua.c reads them: blocking, and sharing stdin's buffer with io.read).
**
** What Debian's libedit (3.1-20221030) does in callback mode, and how this
** file copes, measured under a pty:
**  - its signal handlers kill the process on Ctrl-C: rl_catch_signals and
**    rl_catch_sigwinch are 0, and the REPL handles the signals;
**  - no next prompt appears unless the handler is removed and installed
**    again after each line; that also clears the line on Ctrl-C;
**  - rl_redisplay pushes ^R (reverse search), and rl_replace_line and
**    rl_delete_text do nothing: output goes between "\r\033[K" and
**    rl_forced_update_display, which keeps the typed text;
**  - uv_poll_init sets O_NONBLOCK on the terminal, which would outlive us
**    and break the next program in the shell: the flags are put back at
**    once (libedit reads one byte once poll says there is one);
**  - its append_history rewrites entries: entries are appended here, in
**    its own _HiStOrY_V2_ format (strvis-style octal escapes);
**  - without setlocale(LC_CTYPE, "") it drops non-ASCII input silently.
*/
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#ifdef LOOM_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

#include "lineedit.h"

#define HISTORY_MAX 1000    /* entries kept in memory */
#define HISTORY_HEADER "_HiStOrY_V2_\n"

struct lineedit {
  uv_poll_t poll;      /* fd 0, while a terminal prompt waits */
  uv_idle_t idle;      /* reads a pipe or file in the idle phase */
  uv_signal_t winch, cont;
  lineedit_hooks hooks;
  char *prompt;        /* the prompt shown, for redraws */
  char *history;       /* the history file, or NULL */
  int editor, tty;
  int has_poll;        /* fd 0 could be polled */
  int reading;         /* a line is wanted */
  int installed;       /* libedit's handler is installed */
  int closing;         /* handles whose close callback is due */
  int closed;
};

static lineedit *the_le;  /* for libedit's callbacks */

/* The terminal as we found it, for putting it back (also from a signal
** handler: plain variables, set once before any handler can run). */
static struct termios saved_tio;
static int saved_tio_ok, saved_flags = -1;

void lineedit_restore_terminal(void) {
  if (saved_tio_ok) tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tio);
  if (saved_flags != -1) fcntl(STDIN_FILENO, F_SETFL, saved_flags);
}

int lineedit_is_editor(lineedit *le) { return le->editor; }
int lineedit_is_tty(lineedit *le) { return le->tty; }
int lineedit_visible(lineedit *le) { return le->reading && le->tty; }

static void deliver(lineedit *le, char *line) {
  le->reading = 0;
  le->hooks.line(line, le->hooks.ud);
}

/* ---- without libedit: whole lines ------------------------------------ */

/* Reads one line from stdin (blocking); NULL at the end. */
static char *read_line(void) {
  char *buf = NULL;
  size_t cap = 0;
  ssize_t n = getline(&buf, &cap, stdin);
  if (n < 0) {
    free(buf);
    clearerr(stdin);  /* a terminal may give more after an end of input */
    return NULL;
  }
  if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
  return buf;
}

static void on_idle(uv_idle_t *h) {
  lineedit *le = h->data;
  uv_idle_stop(h);
  if (le->reading) deliver(le, read_line());
}

/* ---- with libedit --------------------------------------------------- */

#ifdef LOOM_HAVE_LIBEDIT

static char *accepted;      /* what the line handler got */
static int got_line;
static char **candidates;   /* for the generator, taken one by one */
static size_t next_candidate;

static void on_rl_line(char *line) {
  accepted = line;
  got_line = 1;
}

static char *generate(const char *text, int state) {
  (void)text; (void)state;
  if (candidates == NULL || candidates[next_candidate] == NULL) return NULL;
  return candidates[next_candidate++];  /* libedit frees it */
}

static char **complete(const char *text, int start, int end) {
  lineedit *le = the_le;
  char **matches = NULL;
  (void)start; (void)end;
  rl_attempted_completion_over = 1;  /* never file names */
  if (le == NULL || le->hooks.complete == NULL) return NULL;
  candidates = le->hooks.complete(text, le->hooks.ud);
  next_candidate = 0;
  if (candidates != NULL) {
    matches = rl_completion_matches(text, generate);
    while (candidates[next_candidate] != NULL)
      free(candidates[next_candidate++]);
    free(candidates);
    candidates = NULL;
  }
  return matches;
}

static void setup_editor(void) {
  /* Lua's number formatting reads LC_NUMERIC: only LC_CTYPE changes */
  setlocale(LC_CTYPE, "");
  rl_catch_signals = 0;
  rl_catch_sigwinch = 0;
  rl_readline_name = "loom";
  rl_attempted_completion_function = complete;
  /* '.' and ':' are part of a word: "string.fo", "t:ca" complete whole */
  static char breaks[] = " \t\n\"\\'`@$><=;|&{(+-*/%^~#,[]";
  rl_basic_word_break_characters = breaks;
  rl_completer_word_break_characters = breaks;
  rl_completion_append_character = '\0';
  /* initializes libedit (rl_prep_terminal needs it before the first
  ** prompt); rl_initialize again would drop the stifle */
  using_history();
  stifle_history(HISTORY_MAX);
}

static void install(lineedit *le) {
  /* raw before the prompt shows: keys typed as soon as it is there would
  ** otherwise meet the cooked terminal (echoed twice, ^D lost) */
  rl_prep_terminal(1);
  rl_callback_handler_install(le->prompt, on_rl_line);
  le->installed = 1;
}

static void uninstall(lineedit *le) {
  if (!le->installed) return;
  rl_callback_handler_remove();  /* also puts the terminal back */
  le->installed = 0;
}

static void on_poll_editor(lineedit *le, int status) {
  if (status < 0) {  /* the terminal went away */
    uninstall(le);
    uv_poll_stop(&le->poll);
    deliver(le, NULL);
    return;
  }
  if (le->hooks.before_read) le->hooks.before_read(le->hooks.ud);
  if (!le->installed) return;  /* it stopped reading */
  got_line = 0;
  rl_callback_read_char();
  if (!got_line) return;
  got_line = 0;
  uninstall(le);
  uv_poll_stop(&le->poll);
  deliver(le, accepted);
}

static void on_signal(uv_signal_t *h, int signum) {
  lineedit *le = h->data;
  if (!le->installed) return;
  if (signum == SIGWINCH) {
    rl_resize_terminal();
  } else {  /* SIGCONT after Ctrl-Z: the shell changed the modes */
    rl_deprep_terminal();
    rl_prep_terminal(1);
    rl_forced_update_display();
  }
}

#endif

/* ---- history file: libedit's format, appended ------------------------ */

/* Appends s as strvis(3) with VIS_WHITE|VIS_OCTAL would write it: what
** libedit's history loader unescapes. */
static void append_encoded(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p > ' ' && *p < 0x7f && *p != '\\') fputc(*p, f);
    else fprintf(f, "\\%03o", *p);
  }
  fputc('\n', f);
}

static void history_append(const char *path, const char *entry) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  FILE *f = fdopen(fd, "a");
  if (f == NULL) {
    close(fd);
    return;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size == 0) fputs(HISTORY_HEADER, f);
  append_encoded(f, entry);
  fclose(f);
}

/* Entries in the history file (its lines but the header). */
static long history_entries(const char *path) {
  FILE *f = fopen(path, "r");
  long n = -1;
  int c;
  if (f == NULL) return 0;
  while ((c = getc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

void lineedit_history(lineedit *le, const char *path) {
  if (!le->editor || path == NULL) return;
  free(le->history);
  le->history = strdup(path);
#ifdef LOOM_HAVE_LIBEDIT
  read_history(path);  /* a missing file is an empty history */
  /* appending makes it grow: once it holds twice what is kept, rewrite it
  ** with the entries kept (the newest) */
  if (history_entries(path) > 2 * HISTORY_MAX) write_history(path);
#endif
}

void lineedit_history_add(lineedit *le, const char *entry) {
  if (!le->editor || entry[0] == '\0') return;
#ifdef LOOM_HAVE_LIBEDIT
  HIST_ENTRY *last = history_get(history_base + history_length - 1);
  if (last != NULL && strcmp(last->line, entry) == 0) return;
  add_history(entry);
#endif
  if (le->history) history_append(le->history, entry);
}

/* ---- the interface -------------------------------------------------- */

static void on_poll(uv_poll_t *h, int status, int events) {
  lineedit *le = h->data;
  (void)events;
#ifdef LOOM_HAVE_LIBEDIT
  if (le->editor) {
    on_poll_editor(le, status);
    return;
  }
#endif
  uv_poll_stop(h);
  deliver(le, status < 0 ? NULL : read_line());
}

lineedit *lineedit_open(uv_loop_t *loop, const lineedit_hooks *hooks) {
  lineedit *le = calloc(1, sizeof *le);
  if (le == NULL) return NULL;
  le->hooks = *hooks;
  le->tty = isatty(STDIN_FILENO);
  saved_tio_ok = le->tty && tcgetattr(STDIN_FILENO, &saved_tio) == 0;
  saved_flags = fcntl(STDIN_FILENO, F_GETFL);
  uv_idle_init(loop, &le->idle);
  le->idle.data = le;
  le->closing = 1;
  if (le->tty && uv_poll_init(loop, &le->poll, STDIN_FILENO) == 0) {
    le->has_poll = 1;
    le->closing++;
    le->poll.data = le;
    /* uv_poll_init made the terminal non-blocking: put it back now */
    if (saved_flags != -1) fcntl(STDIN_FILENO, F_SETFL, saved_flags);
  }
#ifdef LOOM_HAVE_LIBEDIT
  le->editor = le->has_poll && isatty(STDOUT_FILENO);
  if (le->editor) {
    setup_editor();
    uv_signal_init(loop, &le->winch);
    uv_signal_init(loop, &le->cont);
    le->winch.data = le->cont.data = le;
    uv_signal_start(&le->winch, on_signal, SIGWINCH);
    uv_signal_start(&le->cont, on_signal, SIGCONT);
    /* neither keeps the loop alive on its own */
    uv_unref((uv_handle_t *)&le->winch);
    uv_unref((uv_handle_t *)&le->cont);
    le->closing += 2;
  }
#endif
  the_le = le;
  return le;
}

void lineedit_read(lineedit *le, const char *prompt) {
  if (le->closed) return;
  free(le->prompt);
  le->prompt = strdup(prompt ? prompt : "");
  le->reading = 1;
#ifdef LOOM_HAVE_LIBEDIT
  if (le->editor) {
    install(le);
    uv_poll_start(&le->poll, UV_READABLE, on_poll);
    return;
  }
#endif
  fputs(le->prompt, stdout);
  fflush(stdout);
  if (le->has_poll) uv_poll_start(&le->poll, UV_READABLE, on_poll);
  else uv_idle_start(&le->idle, on_idle);
}

void lineedit_abort(lineedit *le) {
  if (!le->reading) return;
  le->reading = 0;
#ifdef LOOM_HAVE_LIBEDIT
  if (le->editor) uninstall(le);
#endif
  if (le->has_poll) uv_poll_stop(&le->poll);
  uv_idle_stop(&le->idle);
  if (le->tty) {
    if (!le->editor) tcflush(STDIN_FILENO, TCIFLUSH);  /* the typed text */
    fputs("\n", stdout);
    fflush(stdout);
  }
}

void lineedit_hide(lineedit *le) {
  if (!lineedit_visible(le)) return;
  fputs("\r\033[K", stdout);
  fflush(stdout);
}

void lineedit_show(lineedit *le) {
  if (!lineedit_visible(le)) return;
#ifdef LOOM_HAVE_LIBEDIT
  if (le->editor) {
    rl_forced_update_display();
    return;
  }
#endif
  fputs(le->prompt, stdout);  /* the kernel keeps the typed text */
  fflush(stdout);
}

static void on_closed(uv_handle_t *h) {
  lineedit *le = h->data;
  if (--le->closing > 0) return;
  free(le->prompt);
  free(le->history);
  free(le);
}

void lineedit_close(lineedit *le) {
  if (le->closed) return;
  le->closed = 1;
  le->reading = 0;
#ifdef LOOM_HAVE_LIBEDIT
  if (le->editor) {
    uninstall(le);
    uv_close((uv_handle_t *)&le->winch, on_closed);
    uv_close((uv_handle_t *)&le->cont, on_closed);
  }
#endif
  if (le->has_poll) uv_close((uv_handle_t *)&le->poll, on_closed);
  uv_close((uv_handle_t *)&le->idle, on_closed);
  lineedit_restore_terminal();
  if (the_le == le) the_le = NULL;
}
