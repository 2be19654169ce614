/*
** curl_api.c: loads libcurl with dlopen on first use of loom.http and
** fills the table of curl_api.h (see there for why it is not linked).
** Debian's libcurl4 (OpenSSL) is tried first, then the GnuTLS flavour;
** $LOOM_LIBCURL names a file to load instead. Loaded once per process and
** never unloaded: curl_global_init is not undone (its state is global).
*/
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "curl_api.h"

/* 7.87: CURLOPT_QUICK_EXIT, CURLOPT_PROTOCOLS_STR (7.85) */
#define MIN_VERSION 0x075700

static loom__curl api;
static const loom__curl *loaded;
static char why_buf[512];
static const char *why_msg;
static uv_once_t once = UV_ONCE_INIT;

static void *sym(void *lib, const char *name, int *missing) {
  void *p = dlsym(lib, name);
  if (p == NULL && *missing == 0) {
    *missing = 1;
    snprintf(why_buf, sizeof why_buf,
             "%s has no %s: install libcurl4 7.87 or later "
             "(apt-get install libcurl4)", api.path, name);
    why_msg = why_buf;
  }
  return p;
}

#define LOAD(name) \
  *(void **)&api.name = sym(lib, "curl_" #name, &missing)

static void load(void) {
  static const char *const names[] = {
    "libcurl.so.4", "libcurl-gnutls.so.4", NULL
  };
  const char *env = getenv("LOOM_LIBCURL");
  void *lib = NULL;
  int missing = 0;
  if (env != NULL && *env != '\0') {
    api.path = env;
    lib = dlopen(env, RTLD_LAZY | RTLD_LOCAL);
  } else {
    for (int i = 0; names[i] != NULL && lib == NULL; i++) {
      api.path = names[i];
      lib = dlopen(names[i], RTLD_LAZY | RTLD_LOCAL);
    }
  }
  if (lib == NULL) {
    const char *e = dlerror();
    snprintf(why_buf, sizeof why_buf,
             "libcurl is not installed (%s): install libcurl4 "
             "(apt-get install libcurl4)", e ? e : api.path);
    why_msg = why_buf;
    return;
  }
  LOAD(global_init); LOAD(version_info);
  LOAD(easy_init); LOAD(easy_cleanup); LOAD(easy_reset); LOAD(easy_setopt);
  LOAD(easy_getinfo); LOAD(easy_pause); LOAD(easy_strerror);
  LOAD(multi_init); LOAD(multi_cleanup); LOAD(multi_setopt);
  LOAD(multi_add_handle); LOAD(multi_remove_handle);
  LOAD(multi_socket_action); LOAD(multi_info_read);
  LOAD(slist_append); LOAD(slist_free_all);
  LOAD(share_init); LOAD(share_setopt); LOAD(share_cleanup);
  LOAD(mime_init); LOAD(mime_free); LOAD(mime_addpart); LOAD(mime_name);
  LOAD(mime_data); LOAD(mime_filedata); LOAD(mime_filename);
  LOAD(mime_type);
  LOAD(url); LOAD(url_cleanup); LOAD(url_set); LOAD(url_get); LOAD(free);
  if (missing) return;  /* never closed: dlclose would not make it safer */
  curl_version_info_data *v = api.version_info(CURLVERSION_NOW);
  api.version = v ? v->version_num : 0;
  if (api.version < MIN_VERSION) {
    snprintf(why_buf, sizeof why_buf,
             "%s is libcurl %s; loom.http needs 7.87 or later: install "
             "a newer libcurl4", api.path, v ? v->version : "?");
    why_msg = why_buf;
    return;
  }
  if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    snprintf(why_buf, sizeof why_buf, "%s: curl_global_init failed",
             api.path);
    why_msg = why_buf;
    return;
  }
  /* CURLOPT_NOSIGNAL is set on every transfer (otherwise curl calls
  ** sigaction at every step); a write to a closed connection must then
  ** not kill the process */
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  loaded = &api;
}

const loom__curl *loom__curl_load(const char **why) {
  uv_once(&once, load);
  if (loaded == NULL && why != NULL) *why = why_msg;
  return loaded;
}
