/*
** fs.c: loom.fs, files and directories on libuv's thread pool, so the
** loop never blocks on a disk: read_file, write_file, append_file, open
** (a File with read, write, lines, seek, close and <close>), stat,
** exists, list_dir, mkdir, remove, rename and tmpdir.
**
** Each call is one job (uv_queue_work) doing plain system calls in a pool
** thread: read_file is open, fstat, read and close in one trip through the
** pool rather than four. A job owns its memory; the task that started it
** suspends, and the job's callback wakes it. If the task is cancelled
** while the job runs, the job is orphaned (or cancelled in the pool if it
** has not started) and frees itself in its callback, closing any file it
** opened. Errors are loom.IOError values (io.h) with code, path and op.
**
** A File keeps its descriptor and a read buffer in malloc'd memory (lfile)
** that a pool thread may be using while its userdata is collected: the
** collector then only marks it gone, and the job's callback closes it.
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

/* ---- files ---------------------------------------------------------- */

#define RBUF_CHUNK 65536
#define RBUF_MAX (16 << 20)  /* the most one read(2) of a fill asks for */

typedef struct lfile {
  int fd;            /* -1 once closed (or not yet open) */
  int busy;          /* a job uses it (and its buffer) */
  int gone;          /* its userdata was collected: the job closes it */
  int readable, writable, append;
  int eof;           /* a read saw the end (cleared by seek and write) */
  char *buf;         /* read-ahead: buf[start, start + len) */
  size_t start, len, cap, scanned;  /* scanned: bytes searched for '\n' */
} lfile;

typedef struct file_ud {
  uint32_t tag;      /* LOOM_FILE_TAG */
  lfile *f;          /* NULL once closed */
} file_ud;

static void lfile_free(lfile *f) {
  if (f->fd >= 0) close(f->fd);
  free(f->buf);
  free(f);
}

/* ---- jobs ----------------------------------------------------------- */

enum {
  OP_READ_FILE, OP_WRITE_FILE, OP_STAT, OP_EXISTS, OP_MKDIR, OP_REMOVE,
  OP_RENAME, OP_TMPDIR, OP_LIST_DIR, OP_OPEN, OP_FILL, OP_FWRITE, OP_FCLOSE
};

/* how OP_FILL knows it has read enough */
enum { FILL_N, FILL_LINE, FILL_ALL };

typedef struct dirent_item { char *name; unsigned char type; } dirent_item;

typedef struct fsjob {
  uv_work_t work;
  loom_t *lm;
  loom__io *io;
  loom_task_t *task;  /* NULL once its task let go of it */
  int op;
  const char *fname;  /* the function, for errors */
  int err;            /* 0, or a libuv error code */
  char *path, *path2; /* owned copies */
  char *data;         /* owned: what to write, or what was read */
  size_t len;
  int flags;          /* open(2) flags; mkdir: parents; remove: recursive */
  int mode;           /* permissions for open and mkdir */
  int fill;           /* FILL_* */
  size_t need;        /* FILL_N: bytes wanted in the buffer */
  struct stat st;
  lfile *file;        /* the File a method works on */
  int fd;             /* OP_OPEN: the descriptor, until a File takes it */
  lfile probe;        /* OP_OPEN: the new File's access flags */
  dirent_item *items;
  size_t count;
  loom__closer closer;  /* frees it if the runtime closes first */
  int done;             /* its callback ran: only a continuation is left */
} fsjob;

static void job_free(fsjob *j) {
  loom__remove_closer(&j->closer);
  if (j->fd >= 0) close(j->fd);  /* opened for nobody */
  free(j->path);
  free(j->path2);
  free(j->data);
  for (size_t i = 0; i < j->count; i++) free(j->items[i].name);
  free(j->items);
  free(j);
}

/* ---- in the pool thread: plain system calls ------------------------- */

static int read_all_fd(int fd, char **out, size_t *outlen, size_t hint) {
  size_t cap = hint > 0 ? hint + 1 : 4096, len = 0;
  char *buf = malloc(cap);
  if (buf == NULL) return UV_ENOMEM;
  for (;;) {
    if (len == cap) {
      size_t ncap = cap * 2;
      char *nb = ncap > cap ? realloc(buf, ncap) : NULL;
      if (nb == NULL) {
        free(buf);
        return UV_ENOMEM;
      }
      buf = nb;
      cap = ncap;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = -errno;
      free(buf);
      return e;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  *out = buf;
  *outlen = len;
  return 0;
}

static int write_all_fd(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int do_read_file(fsjob *j) {
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  size_t hint = 0;
  if (fstat(fd, &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      close(fd);
      return UV_EISDIR;
    }
    if (S_ISREG(st.st_mode) && st.st_size > 0) hint = (size_t)st.st_size;
  }
  int r = read_all_fd(fd, &j->data, &j->len, hint);
  close(fd);
  return r;
}

static int do_write_file(fsjob *j) {
  int fd = open(j->path, j->flags | O_CLOEXEC, 0666);
  if (fd < 0) return -errno;
  int r = write_all_fd(fd, j->data, j->len);
  if (close(fd) != 0 && r == 0) r = -errno;
  return r;
}

static int mkdir_parents(char *path, int mode) {
  struct stat st;
  if (stat(path, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : UV_EEXIST;
  char *slash = strrchr(path, '/');
  while (slash != NULL && slash > path && slash[-1] == '/') slash--;
  if (slash != NULL && slash != path) {
    *slash = '\0';
    int r = mkdir_parents(path, mode);
    *slash = '/';
    if (r != 0) return r;
  }
  if (mkdir(path, (mode_t)mode) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static int remove_tree(const char *path) {
  struct stat st;
  if (lstat(path, &st) != 0) return -errno;
  if (!S_ISDIR(st.st_mode)) return unlink(path) == 0 ? 0 : -errno;
  DIR *d = opendir(path);
  if (d == NULL) return -errno;
  int r = 0;
  struct dirent *e;
  size_t plen = strlen(path);
  while (r == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    size_t n = plen + strlen(e->d_name) + 2;
    char *sub = malloc(n);
    if (sub == NULL) {
      r = UV_ENOMEM;
      break;
    }
    snprintf(sub, n, "%s/%s", path, e->d_name);
    r = remove_tree(sub);
    free(sub);
  }
  closedir(d);
  if (r == 0 && rmdir(path) != 0) r = -errno;
  return r;
}

static int do_remove(fsjob *j) {
  if (j->flags) return remove_tree(j->path);
  if (unlink(j->path) == 0) return 0;
  if (errno == EISDIR || errno == EPERM) {
    struct stat st;
    if (lstat(j->path, &st) == 0 && S_ISDIR(st.st_mode))
      return rmdir(j->path) == 0 ? 0 : -errno;
    errno = EPERM;
  }
  return -errno;
}

static int item_cmp(const void *a, const void *b) {
  return strcmp(((const dirent_item *)a)->name,
                ((const dirent_item *)b)->name);
}

static int do_list_dir(fsjob *j) {
  DIR *d = opendir(j->path);
  if (d == NULL) return -errno;
  size_t cap = 0;
  struct dirent *e;
  int r = 0;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (j->count == cap) {
      size_t ncap = cap ? cap * 2 : 32;
      dirent_item *ni = realloc(j->items, ncap * sizeof *ni);
      if (ni == NULL) {
        r = UV_ENOMEM;
        break;
      }
      j->items = ni;
      cap = ncap;
    }
    char *name = strdup(e->d_name);
    if (name == NULL) {
      r = UV_ENOMEM;
      break;
    }
    j->items[j->count].name = name;
    j->items[j->count].type = e->d_type;
    j->count++;
  }
  closedir(d);
  if (r == 0 && j->count > 1)
    qsort(j->items, j->count, sizeof *j->items, item_cmp);
  return r;
}

static int do_tmpdir(fsjob *j) {
  return mkdtemp(j->path) != NULL ? 0 : -errno;
}

/* The file's buffer has what the fill asked for. */
static int filled(lfile *f, int fill, size_t need) {
  if (fill == FILL_N) return f->len >= need;
  if (fill == FILL_LINE) {
    if (f->len > f->scanned &&
        memchr(f->buf + f->start + f->scanned, '\n',
               f->len - f->scanned) != NULL)
      return 1;
    f->scanned = f->len;
  }
  return 0;
}

static int do_fill(fsjob *j) {
  lfile *f = j->file;
  while (!f->eof && !filled(f, j->fill, j->need)) {
    size_t want = RBUF_CHUNK;
    if (j->fill == FILL_N && j->need - f->len > want)
      want = j->need - f->len < RBUF_MAX ? j->need - f->len : RBUF_MAX;
    if (f->start + f->len + want > f->cap && f->start > 0) {
      memmove(f->buf, f->buf + f->start, f->len);
      f->start = 0;
    }
    if (f->len + want > f->cap) {  /* grows geometrically: "a" is linear */
      size_t ncap = f->cap * 2 > f->len + want ? f->cap * 2 : f->len + want;
      char *nb = realloc(f->buf, ncap);
      if (nb == NULL) return UV_ENOMEM;
      f->buf = nb;
      f->cap = ncap;
    }
    ssize_t r = read(f->fd, f->buf + f->start + f->len, want);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) f->eof = 1;
    f->len += (size_t)r;
  }
  return 0;
}

static int do_fwrite(fsjob *j) {
  lfile *f = j->file;
  if (f->len > 0 && !f->append) {  /* read ahead: write where we are */
    if (lseek(f->fd, -(off_t)f->len, SEEK_CUR) < 0) return -errno;
  }
  f->start = f->len = f->scanned = 0;
  f->eof = 0;
  return write_all_fd(f->fd, j->data, j->len);
}

static void work_cb(uv_work_t *w) {
  fsjob *j = w->data;
  switch (j->op) {
    case OP_READ_FILE: j->err = do_read_file(j); break;
    case OP_WRITE_FILE: j->err = do_write_file(j); break;
    case OP_STAT:
    case OP_EXISTS:
      j->err = (j->flags ? stat(j->path, &j->st)
                         : lstat(j->path, &j->st)) == 0 ? 0 : -errno;
      break;
    case OP_MKDIR:
      if (j->flags) j->err = mkdir_parents(j->path, j->mode);
      else j->err = mkdir(j->path, (mode_t)j->mode) == 0 ? 0 : -errno;
      break;
    case OP_REMOVE: j->err = do_remove(j); break;
    case OP_RENAME:
      j->err = rename(j->path, j->path2) == 0 ? 0 : -errno;
      break;
    case OP_TMPDIR: j->err = do_tmpdir(j); break;
    case OP_LIST_DIR: j->err = do_list_dir(j); break;
    case OP_OPEN: {
      int fd = open(j->path, j->flags | O_CLOEXEC, j->mode);
      struct stat st;
      if (fd < 0) {
        j->err = -errno;
      } else if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
                 (j->flags & O_ACCMODE) == O_RDONLY) {
        close(fd);
        j->err = UV_EISDIR;
      } else {
        j->fd = fd;
      }
      break;
    }
    case OP_FILL: j->err = do_fill(j); break;
    case OP_FWRITE: j->err = do_fwrite(j); break;
    case OP_FCLOSE: {
      int fd = j->file->fd;
      j->file->fd = -1;
      j->err = close(fd) == 0 || errno == EINTR ? 0 : -errno;
      break;
    }
  }
}

/* ---- on the loop thread --------------------------------------------- */

static void after_cb(uv_work_t *w, int status) {
  fsjob *j = w->data;
  loom_t *lm = j->lm;
  if (status == UV_ECANCELED) j->err = UV_ECANCELED;
  loom__io_count(lm, &j->io->requests, -1);
  if (j->file != NULL) {
    lfile *f = j->file;
    f->busy = 0;
    if (f->gone) {  /* closed, or its userdata collected, meanwhile */
      lfile_free(f);
      j->file = NULL;
    }
  }
  if (j->task == NULL || loom__closed(lm)) {
    job_free(j);
  } else {
    j->done = 1;
    loom__wake(j->task);
  }
  loom__release(lm);
}

/* The runtime closes with the job's task waiting (or woken and never to
** run again): a finished job is freed here, one in the pool by its
** callback. */
static void job_close(loom_t *lm, loom__closer *c) {
  fsjob *j = (fsjob *)((char *)c - offsetof(fsjob, closer));
  (void)lm;
  j->task = NULL;
  if (j->done) job_free(j);
}

/* The task was cancelled: an unfinished job is orphaned (or cancelled in
** the pool, if it has not started), a finished one is freed here. */
static void job_cancel(loom_task_t *t, void *data, int woken) {
  fsjob *j = data;
  (void)t;
  /* detached (the runtime closes or exits): finished or not, as it is */
  if (woken == 1 || (woken == LOOM_WAIT_DETACHED && j->done)) {
    job_free(j);
    return;
  }
  j->task = NULL;
  uv_cancel((uv_req_t *)&j->work);
}

static const loom__wait fs_wait = { "a file operation", job_cancel, NULL };

/* A path: a string (not a number, which would make a file named after
** it), with no zero byte. */
static char *checkpath(lua_State *L, int idx) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING) luaL_typeerror(L, idx, "string");
  const char *p = lua_tolstring(L, idx, &len);
  if (strlen(p) != len) luaL_argerror(L, idx, "path contains a zero byte");
  if (len == 0) luaL_argerror(L, idx, "path is empty");
  return (char *)p;
}

/* A new job for the running task (after loom__prepare_suspend). The path
** is copied first, so a failure frees nothing the job already holds. */
static fsjob *job_new(lua_State *L, int op, const char *fname,
                      const char *path) {
  loom__io *io = loom__io_get(L);
  char *copy = NULL;
  if (path != NULL && (copy = strdup(path)) == NULL)
    return luaL_error(L, "%s: not enough memory", fname), NULL;
  fsjob *j = calloc(1, sizeof *j);
  if (j == NULL) {
    free(copy);
    return luaL_error(L, "%s: not enough memory", fname), NULL;
  }
  j->lm = io->lm;
  j->io = io;
  j->op = op;
  j->fname = fname;
  j->path = copy;
  j->fd = -1;
  j->work.data = j;
  return j;
}

static int job_start(lua_State *L, fsjob *j, lua_KFunction k) {
  loom_t *lm = j->lm;
  j->task = loom__prepare_suspend(L, lm, j->fname);  /* checked before */
  j->closer.close = job_close;
  loom__add_closer(lm, &j->closer);
  uv_queue_work(loom_loop(lm), &j->work, work_cb, after_cb);
  loom__hold(lm);
  j->io->requests++;
  return loom__suspend(L, lm, &fs_wait, j, (lua_KContext)j, k);
}

/* Raises the job's error (and frees it). */
static int job_raise(lua_State *L, fsjob *j) {
  const char *path = j->path;
  if (j->op == OP_RENAME && j->err != UV_ENOENT && j->path2 != NULL)
    path = j->path2;
  if (j->op >= OP_FILL) path = NULL;
  loom__io_push_error(L, j->fname, j->err, path ? "path" : NULL, path);
  job_free(j);
  return lua_error(L);
}

/* The continuation of the simple jobs. */
static const char *type_name(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  return "unknown";
}

static void push_time(lua_State *L, struct timespec ts, const char *k) {
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
}

static void push_stat(lua_State *L, const struct stat *st) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  push_time(L, st->st_mtim, "mtime");
  push_time(L, st->st_atim, "atime");
  push_time(L, st->st_ctim, "ctime");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->st_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
}

static int list_iter(lua_State *L);

static int simple_k(lua_State *L, int status, lua_KContext ctx) {
  fsjob *j = (fsjob *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));  /* cancelled: j is gone */
  if (j->op == OP_EXISTS &&
      (j->err == UV_ENOENT || j->err == UV_ENOTDIR)) {
    job_free(j);
    lua_pushboolean(L, 0);
    return 1;
  }
  if (j->err != 0) return job_raise(L, j);
  int n = 0;
  switch (j->op) {
    case OP_READ_FILE:
      lua_pushlstring(L, j->data, j->len);
      n = 1;
      break;
    case OP_STAT:
      push_stat(L, &j->st);
      n = 1;
      break;
    case OP_EXISTS:
      lua_pushboolean(L, 1);
      n = 1;
      break;
    case OP_TMPDIR:
      lua_pushstring(L, j->path);
      n = 1;
      break;
    case OP_LIST_DIR: {
      /* the names go into a table the iterator walks */
      lua_createtable(L, (int)(j->count < INT_MAX ? j->count : 0), 0);
      for (size_t i = 0; i < j->count; i++) {
        lua_pushstring(L, j->items[i].name);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 1));
        static const char *const types[] = {
          [DT_REG] = "file", [DT_DIR] = "directory", [DT_LNK] = "link",
          [DT_FIFO] = "fifo", [DT_SOCK] = "socket", [DT_CHR] = "char",
          [DT_BLK] = "block"
        };
        unsigned char t = j->items[i].type;
        const char *tn = t < sizeof types / sizeof *types && types[t]
                         ? types[t] : "unknown";
        lua_pushstring(L, tn);
        lua_rawseti(L, -2, (lua_Integer)(2 * i + 2));
      }
      lua_pushinteger(L, 0);
      lua_pushcclosure(L, list_iter, 2);
      n = 1;
      break;
    }
    default:
      break;
  }
  job_free(j);
  return n;
}

/* The iterator of list_dir: name, type for each entry, in name order. */
static int list_iter(lua_State *L) {
  lua_Integer i = lua_tointeger(L, lua_upvalueindex(2));
  if (lua_rawgeti(L, lua_upvalueindex(1), 2 * i + 1) == LUA_TNIL) return 1;
  lua_rawgeti(L, lua_upvalueindex(1), 2 * i + 2);
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(2));
  return 2;
}

/* ---- the functions -------------------------------------------------- */

static int l_read_file(lua_State *L) {
  const char *path = checkpath(L, 1);
  loom__prepare_suspend(L, loom__up(L), "read_file");
  fsjob *j = job_new(L, OP_READ_FILE, "read_file", path);
  return job_start(L, j, simple_k);
}

static int write_common(lua_State *L, const char *fname, int flags) {
  const char *path = checkpath(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  loom__prepare_suspend(L, loom__up(L), fname);
  fsjob *j = job_new(L, OP_WRITE_FILE, fname, path);
  j->flags = flags;
  j->len = len;
  if ((j->data = malloc(len ? len : 1)) == NULL) {
    job_free(j);
    return luaL_error(L, "%s: not enough memory", fname);
  }
  memcpy(j->data, data, len);
  return job_start(L, j, simple_k);
}

static int l_write_file(lua_State *L) {
  return write_common(L, "write_file", O_WRONLY | O_CREAT | O_TRUNC);
}

static int l_append_file(lua_State *L) {
  return write_common(L, "append_file", O_WRONLY | O_CREAT | O_APPEND);
}

static int l_stat(lua_State *L) {
  const char *path = checkpath(L, 1);
  int follow = 1;
  if (loom__io_optfield(L, 2, "follow", "stat") != LUA_TNIL)
    follow = lua_toboolean(L, -1);
  lua_pop(L, 1);
  loom__prepare_suspend(L, loom__up(L), "stat");
  fsjob *j = job_new(L, OP_STAT, "stat", path);
  j->flags = follow;
  return job_start(L, j, simple_k);
}

static int l_exists(lua_State *L) {
  const char *path = checkpath(L, 1);
  loom__prepare_suspend(L, loom__up(L), "exists");
  fsjob *j = job_new(L, OP_EXISTS, "exists", path);
  j->flags = 1;
  return job_start(L, j, simple_k);
}

static int checkmode(lua_State *L, int opts, const char *fname, int def) {
  int mode = def;
  if (loom__io_optfield(L, opts, "mode", fname) != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0 ||
        lua_tointeger(L, -1) > 07777)
      luaL_argerror(L, opts, "mode must be an integer from 0 to 0o7777");
    mode = (int)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return mode;
}

static int l_mkdir(lua_State *L) {
  const char *path = checkpath(L, 1);
  int parents = 0;
  if (loom__io_optfield(L, 2, "parents", "mkdir") != LUA_TNIL)
    parents = lua_toboolean(L, -1);
  lua_pop(L, 1);
  int mode = checkmode(L, 2, "mkdir", 0777);
  loom__prepare_suspend(L, loom__up(L), "mkdir");
  fsjob *j = job_new(L, OP_MKDIR, "mkdir", path);
  j->flags = parents;
  j->mode = mode;
  return job_start(L, j, simple_k);
}

static int l_remove(lua_State *L) {
  const char *path = checkpath(L, 1);
  int recursive = 0;
  if (loom__io_optfield(L, 2, "recursive", "remove") != LUA_TNIL)
    recursive = lua_toboolean(L, -1);
  lua_pop(L, 1);
  loom__prepare_suspend(L, loom__up(L), "remove");
  fsjob *j = job_new(L, OP_REMOVE, "remove", path);
  j->flags = recursive;
  return job_start(L, j, simple_k);
}

static int l_rename(lua_State *L) {
  const char *from = checkpath(L, 1), *to = checkpath(L, 2);
  loom__prepare_suspend(L, loom__up(L), "rename");
  fsjob *j = job_new(L, OP_RENAME, "rename", from);
  if ((j->path2 = strdup(to)) == NULL) {
    job_free(j);
    return luaL_error(L, "rename: not enough memory");
  }
  return job_start(L, j, simple_k);
}

static int l_tmpdir(lua_State *L) {
  size_t plen;
  const char *prefix = luaL_optlstring(L, 1, "loom-", &plen);
  if (strlen(prefix) != plen || strchr(prefix, '/') != NULL)
    luaL_argerror(L, 1, "prefix must be a name (no '/' or zero byte)");
  const char *base = getenv("TMPDIR");
  if (base == NULL || *base == '\0') base = "/tmp";
  lua_pushfstring(L, "%s/%sXXXXXX", base, prefix);
  loom__prepare_suspend(L, loom__up(L), "tmpdir");
  fsjob *j = job_new(L, OP_TMPDIR, "tmpdir", lua_tostring(L, -1));
  return job_start(L, j, simple_k);
}

static int l_list_dir(lua_State *L) {
  const char *path = checkpath(L, 1);
  loom__prepare_suspend(L, loom__up(L), "list_dir");
  fsjob *j = job_new(L, OP_LIST_DIR, "list_dir", path);
  return job_start(L, j, simple_k);
}

/* ---- File ----------------------------------------------------------- */

static file_ud *checkfile_ud(lua_State *L) {
  return loom__type_check(L, &loom__io_get(L)->file_type, LOOM_FILE_TAG);
}

/* The open, idle file of method fname, or raises. */
static lfile *checkfile(lua_State *L, const char *fname) {
  file_ud *u = checkfile_ud(L);
  if (u->f == NULL)
    loom__io_error2(L, fname, "ECLOSED", "the file is closed", NULL, NULL);
  if (u->f->busy)
    loom__io_error2(L, fname, "EBUSY", "another task is using the file",
                    NULL, NULL);
  return u->f;
}

static int parse_mode(const char *m, int *flags, lfile *f) {
  int acc;
  switch (*m++) {
    case 'r': acc = 0; *flags = O_RDONLY; f->readable = 1; break;
    case 'w': acc = 1; *flags = O_WRONLY | O_CREAT | O_TRUNC;
              f->writable = 1; break;
    case 'a': acc = 2; *flags = O_WRONLY | O_CREAT | O_APPEND;
              f->writable = f->append = 1; break;
    default: return 0;
  }
  if (*m == '+') {
    m++;
    *flags = (*flags & ~O_ACCMODE) | O_RDWR;
    f->readable = f->writable = 1;
  }
  for (; *m; m++) {
    if (*m == 'b') continue;
    if (*m == 'x' && acc == 1) {
      *flags |= O_EXCL;
      continue;
    }
    return 0;
  }
  return 1;
}

static int open_k(lua_State *L, int status, lua_KContext ctx) {
  fsjob *j = (fsjob *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  if (j->err != 0) return job_raise(L, j);
  loom__io *io = loom__io_get(L);
  file_ud *u = loom__type_new(L, &io->file_type, 0, LOOM_FILE_TAG);
  lfile *f = malloc(sizeof *f);
  if (f == NULL) {
    job_free(j);
    return luaL_error(L, "open: not enough memory");
  }
  *f = j->probe;
  f->fd = j->fd;
  j->fd = -1;
  u->f = f;
  io->files++;
  job_free(j);
  return 1;
}

static int l_open(lua_State *L) {
  const char *path = checkpath(L, 1);
  const char *mode = luaL_optstring(L, 2, "r");
  lfile probe;
  int flags;
  memset(&probe, 0, sizeof probe);
  if (!parse_mode(mode, &flags, &probe))
    return luaL_argerror(L, 2, lua_pushfstring(L, "invalid mode '%s'",
                                               mode));
  loom__prepare_suspend(L, loom__up(L), "open");
  fsjob *j = job_new(L, OP_OPEN, "open", path);
  j->probe = probe;
  j->flags = flags;
  j->mode = 0666;
  return job_start(L, j, open_k);
}

/* read formats: a count, "a", "l", "L" (a leading '*' is allowed) */
typedef struct rfmt { int fill; size_t n; int keep_nl; } rfmt;

static rfmt checkfmt(lua_State *L, int idx) {
  rfmt r = { FILL_LINE, 0, 0 };
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, idx);
    luaL_argcheck(L, n >= 0, idx, "count must be non-negative");
    r.fill = FILL_N;
    r.n = (size_t)n;
    return r;
  }
  const char *p = luaL_optstring(L, idx, "l");
  if (*p == '*') p++;
  switch (*p) {
    case 'a': r.fill = FILL_ALL; break;
    case 'l': break;
    case 'L': r.keep_nl = 1; break;
    default: luaL_argerror(L, idx, "invalid format");
  }
  return r;
}

/* Takes what fmt asks for from the buffer; returns the count pushed. */
static int take(lua_State *L, lfile *f, rfmt fmt) {
  char *p = f->buf + f->start;
  size_t n;
  if (fmt.fill == FILL_N) {
    if (f->len == 0 && fmt.n > 0) {
      lua_pushnil(L);
      return 1;
    }
    n = fmt.n < f->len ? fmt.n : f->len;
    lua_pushlstring(L, p, n);
  } else if (fmt.fill == FILL_ALL) {
    n = f->len;
    lua_pushlstring(L, p, n);
  } else {
    char *nl = f->len ? memchr(p, '\n', f->len) : NULL;
    if (nl == NULL && f->len == 0) {
      lua_pushnil(L);
      return 1;
    }
    n = nl ? (size_t)(nl - p) + 1 : f->len;
    lua_pushlstring(L, p, nl && !fmt.keep_nl ? n - 1 : n);
  }
  f->start += n;
  f->len -= n;
  f->scanned = 0;
  if (f->len == 0) f->start = 0;
  return 1;
}

static int enough(lfile *f, rfmt fmt) {
  if (f->eof) return 1;
  if (fmt.fill == FILL_N) return f->len >= fmt.n;
  if (fmt.fill == FILL_LINE)
    return f->len && memchr(f->buf + f->start, '\n', f->len) != NULL;
  return 0;
}

static int fread_k(lua_State *L, int status, lua_KContext ctx) {
  fsjob *j = (fsjob *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  lfile *f = j->file;
  if (f == NULL) {  /* closed by another task meanwhile */
    job_free(j);
    return loom__io_error2(L, "read", "ECLOSED", "the file is closed", NULL,
                           NULL);
  }
  if (j->err != 0) return job_raise(L, j);
  rfmt fmt = { j->fill, j->need, j->mode };
  job_free(j);
  return take(L, f, fmt);
}

static int read_common(lua_State *L, int fmtidx, const char *fname) {
  lfile *f = checkfile(L, fname);
  rfmt fmt = checkfmt(L, fmtidx);
  if (!f->readable)
    return loom__io_error2(L, fname, "EBADF", "the file is not open for "
                           "reading", NULL, NULL);
  if (enough(f, fmt)) return take(L, f, fmt);
  loom__prepare_suspend(L, loom__up(L), fname);
  fsjob *j = job_new(L, OP_FILL, fname, NULL);
  j->file = f;
  j->fill = fmt.fill;
  j->need = fmt.n;
  j->mode = fmt.keep_nl;
  f->busy = 1;
  return job_start(L, j, fread_k);
}

static int f_read(lua_State *L) {
  return read_common(L, 2, "read");
}

/* the iterator of lines(): upvalue 2 is the file */
static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_pushvalue(L, lua_upvalueindex(3));
  return read_common(L, 2, "lines");
}

static int f_lines(lua_State *L) {
  checkfile_ud(L);
  if (!lua_isnoneornil(L, 2)) checkfmt(L, 2);
  else {
    lua_settop(L, 1);
    lua_pushliteral(L, "l");
  }
  loom__push_box(L);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, lines_iter, 3);
  return 1;
}

static int fwrite_k(lua_State *L, int status, lua_KContext ctx) {
  fsjob *j = (fsjob *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  int closed = j->file == NULL;
  if (j->err != 0) return job_raise(L, j);
  job_free(j);
  if (closed)
    return loom__io_error2(L, "write", "ECLOSED", "the file was closed "
                           "while it was written", NULL, NULL);
  lua_settop(L, 1);
  return 1;
}

static int f_write(lua_State *L) {
  lfile *f = checkfile(L, "write");
  int n = lua_gettop(L);
  size_t total = 0;
  for (int i = 2; i <= n; i++) {
    size_t len;
    if (lua_type(L, i) != LUA_TSTRING && lua_type(L, i) != LUA_TNUMBER)
      return luaL_typeerror(L, i, "string or number");
    lua_tolstring(L, i, &len);
    total += len;
  }
  if (!f->writable)
    return loom__io_error2(L, "write", "EBADF", "the file is not open for "
                           "writing", NULL, NULL);
  loom__prepare_suspend(L, loom__up(L), "write");
  fsjob *j = job_new(L, OP_FWRITE, "write", NULL);
  if ((j->data = malloc(total ? total : 1)) == NULL) {
    job_free(j);
    return luaL_error(L, "write: not enough memory");
  }
  for (int i = 2; i <= n; i++) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    memcpy(j->data + j->len, s, len);
    j->len += len;
  }
  j->file = f;
  f->busy = 1;
  return job_start(L, j, fwrite_k);
}

/* seek is an lseek, which does not wait on the disk: done here. */
static int f_seek(lua_State *L) {
  static const int modes[] = { SEEK_SET, SEEK_CUR, SEEK_END };
  static const char *const names[] = { "set", "cur", "end", NULL };
  lfile *f = checkfile(L, "seek");
  int op = luaL_checkoption(L, 2, "cur", names);
  lua_Integer off = luaL_optinteger(L, 3, 0);
  off_t base = 0;
  if (modes[op] == SEEK_CUR) base = -(off_t)f->len;  /* read ahead */
  off_t r = lseek(f->fd, (off_t)off + base, modes[op]);
  if (r < 0) return loom__io_error(L, "seek", -errno, NULL, NULL);
  f->start = f->len = f->scanned = 0;
  f->eof = 0;
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

static int fclose_k(lua_State *L, int status, lua_KContext ctx) {
  fsjob *j = (fsjob *)ctx;
  (void)status;
  loom__resumed(L, loom__up(L));
  int err = j->err;
  j->file = NULL;
  job_free(j);
  if (err != 0) return loom__io_error(L, "close", err, NULL, NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int f_close(lua_State *L) {
  file_ud *u = checkfile_ud(L);
  lfile *f = u->f;
  if (f == NULL) return 0;  /* closed already: as io, no error */
  loom_t *lm = loom__up(L);
  u->f = NULL;
  loom__io_get(L)->files--;
  if (f->busy) {  /* a job (of a task cancelled, or another) has it */
    f->gone = 1;  /* its callback closes it */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!loom__can_suspend(L, lm)) {  /* a __close that cannot wait */
    lfile_free(f);
    lua_pushboolean(L, 1);
    return 1;
  }
  loom__prepare_suspend(L, lm, "close");
  fsjob *j = job_new(L, OP_FCLOSE, "close", NULL);
  free(f->buf);
  f->buf = NULL;
  j->file = f;
  f->busy = 1;
  f->gone = 1;  /* freed by the callback once closed */
  return job_start(L, j, fclose_k);
}

static int f_gc(lua_State *L) {
  file_ud *u = lua_touserdata(L, 1);
  lfile *f = u->f;
  if (f == NULL) return 0;
  u->f = NULL;
  if (loom__up_or_null(L) != NULL) loom__io_get(L)->files--;
  if (f->busy) f->gone = 1;  /* the job closes it */
  else lfile_free(f);
  return 0;
}

static int f_tostring(lua_State *L) {
  file_ud *u = checkfile_ud(L);
  if (u->f == NULL) lua_pushfstring(L, "loom.File: %p (closed)", (void *)u);
  else lua_pushfstring(L, "loom.File: %p", (void *)u);
  return 1;
}

static void open_file_type(lua_State *L, loom__io *io) {
  static const luaL_Reg methods[] = {
    {"read", f_read}, {"write", f_write}, {"lines", f_lines},
    {"seek", f_seek}, {"close", f_close}, {NULL, NULL}
  };
  static const luaL_Reg metamethods[] = {
    {"__gc", f_gc}, {"__close", f_close}, {"__tostring", f_tostring},
    {NULL, NULL}
  };
  loom__io_type(L, &io->file_type, "loom.File", sizeof(file_ud),
                metamethods, methods, NULL);
}

int luaopen_loom_fs(lua_State *L) {
  static const luaL_Reg fns[] = {
    {"read_file", l_read_file}, {"write_file", l_write_file},
    {"append_file", l_append_file}, {"open", l_open}, {"stat", l_stat},
    {"exists", l_exists}, {"list_dir", l_list_dir}, {"mkdir", l_mkdir},
    {"remove", l_remove}, {"rename", l_rename}, {"tmpdir", l_tmpdir},
    {NULL, NULL}
  };
  if (loom_get(L) == NULL)
    return luaL_error(L, "loom.fs: require \"loom\" first");
  loom__io *io = loom__io_of(L);
  open_file_type(L, io);
  lua_createtable(L, 0, 12);
  loom__setfuncs(L, fns);
  return 1;
}
