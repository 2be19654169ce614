/*
** curl_api.h: the libcurl functions loom.http calls, as a table filled by
** dlopen on first use of loom.http, so a script that never makes an HTTP
** request never pays for loading libcurl (about 9 ms at every start when
** linked). curl's header gives the types and constants only: loom does
** not link libcurl.
*/
#ifndef LOOM_CURL_API_H
#define LOOM_CURL_API_H

#include <stddef.h>

#define CURL_NO_OLDIES
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

#define LOOM_CURL_FN(name) __typeof__(curl_##name) *name

typedef struct loom__curl {
  LOOM_CURL_FN(global_init);
  LOOM_CURL_FN(version_info);
  LOOM_CURL_FN(easy_init);
  LOOM_CURL_FN(easy_cleanup);
  LOOM_CURL_FN(easy_reset);
  LOOM_CURL_FN(easy_setopt);
  LOOM_CURL_FN(easy_getinfo);
  LOOM_CURL_FN(easy_pause);
  LOOM_CURL_FN(easy_strerror);
  LOOM_CURL_FN(multi_init);
  LOOM_CURL_FN(multi_cleanup);
  LOOM_CURL_FN(multi_setopt);
  LOOM_CURL_FN(multi_add_handle);
  LOOM_CURL_FN(multi_remove_handle);
  LOOM_CURL_FN(multi_socket_action);
  LOOM_CURL_FN(multi_info_read);
  LOOM_CURL_FN(slist_append);
  LOOM_CURL_FN(slist_free_all);
  LOOM_CURL_FN(share_init);
  LOOM_CURL_FN(share_setopt);
  LOOM_CURL_FN(share_cleanup);
  LOOM_CURL_FN(mime_init);
  LOOM_CURL_FN(mime_free);
  LOOM_CURL_FN(mime_addpart);
  LOOM_CURL_FN(mime_name);
  LOOM_CURL_FN(mime_data);
  LOOM_CURL_FN(mime_filedata);
  LOOM_CURL_FN(mime_filename);
  LOOM_CURL_FN(mime_type);
  LOOM_CURL_FN(url);
  LOOM_CURL_FN(url_cleanup);
  LOOM_CURL_FN(url_set);
  LOOM_CURL_FN(url_get);
  LOOM_CURL_FN(free);
  unsigned version;       /* LIBCURL_VERSION_NUM of the library loaded */
  const char *path;       /* the file it was loaded from */
} loom__curl;

/* Loads libcurl (once per process; $LOOM_LIBCURL names another file) and
** initialises it. Returns the table, or NULL with the reason, a sentence
** that says what to install, in *why. Thread-safe. */
const loom__curl *loom__curl_load(const char **why);

#endif
