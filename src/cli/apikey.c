/*
 * apikey.c - `mailout apikey create|list|revoke`: the keys that let a shop's
 * code use the HTTP API (`mailout serve --http`).
 *
 * `create NAME` prints the new key once: only its SHA-256 is stored, so it
 * cannot be shown again (revoke it and make another if it is lost). `list`
 * shows names, prefixes and dates, never keys. `revoke NAME` stops a key
 * within a second, also in a running service.
 * Leaves out: renaming, deleting (revoked keys stay listed, for the record).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "cli/cli.h"

#define KEY_BUF 128

static void
apikey_usage(FILE *out)
{
    fputs("usage: mailout apikey create NAME [--json]\n"
          "       mailout apikey list [--json]\n"
          "       mailout apikey revoke NAME [--json]\n"
          "\n"
          "API keys let programs use the HTTP API (mailout serve --http ADDR:PORT) with\n"
          "\"Authorization: Bearer KEY\". A key is shown once, when it is made; mailout keeps\n"
          "only its hash.\n",
          out);
}

static int
exit_code(const struct mo_error *err)
{
    return err->category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

static int
report_error(const struct mo_error *err, bool json)
{
    if (json)
        cli_json_print(json_pack("{s:b, s:[{s:s?, s:s}]}", "ok", 0, "errors", "field", err->field,
                                 "message", err->text));
    else
        fprintf(stderr, "mailout: %s\n", err->text);
    return exit_code(err);
}

/* "2026-11-26 05:09 UTC", or "never" for 0. */
static void
format_time(int64_t t, char *out, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%Y-%m-%d %H:%M UTC", &tm) == 0)
        snprintf(out, size, "never");
}

static int
apikey_create(const char *name, bool json)
{
    char key[KEY_BUF];
    struct mo_error err;
    int code = CLI_EXIT_OK;

    if (admin_apikey_create(cli_home(), name, key, sizeof(key), &err) != 0)
        return report_error(&err, json);
    if (json) {
        cli_json_print(json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "name", name, "key", key, "note",
                                 "this key is shown once; mailout keeps only its hash"));
    } else {
        printf("%s\n", key);
        fprintf(stderr,
                "mailout: made the API key \"%s\". Copy it now: it cannot be shown again (only "
                "its hash is kept).\n"
                "Use it as \"Authorization: Bearer KEY\"; `mailout apikey revoke %s` stops it.\n",
                name, name);
    }
    mo_wipe(key, sizeof(key));
    return code;
}

static int
apikey_list(bool json)
{
    struct admin_apikey_info *keys = NULL;
    struct mo_error err;
    size_t n = 0;

    if (admin_apikey_list(cli_home(), &keys, &n, &err) != 0)
        return report_error(&err, json);
    if (json) {
        json_t *list = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(list, json_pack("{s:I, s:s, s:s, s:I, s:o, s:b}", "id",
                                                  (json_int_t)keys[i].id, "name", keys[i].name,
                                                  "prefix", keys[i].prefix, "created_at",
                                                  (json_int_t)keys[i].created_at, "last_used_at",
                                                  cli_json_int_or_null(keys[i].last_used_at),
                                                  "revoked", keys[i].revoked));
        cli_json_print(json_pack("{s:b, s:o}", "ok", 1, "keys", list));
    } else if (n == 0) {
        printf("no API keys; make one with `mailout apikey create NAME`\n");
    } else {
        printf("%-24s %-14s %-22s %-22s %s\n", "NAME", "PREFIX", "CREATED", "LAST USED", "STATE");
        for (size_t i = 0; i < n; i++) {
            char created[40];
            char used[40];

            format_time(keys[i].created_at, created, sizeof(created));
            format_time(keys[i].last_used_at, used, sizeof(used));
            printf("%-24s %-14s %-22s %-22s %s\n", keys[i].name, keys[i].prefix, created, used,
                   keys[i].revoked ? "revoked" : "active");
        }
    }
    free(keys);
    return CLI_EXIT_OK;
}

static int
apikey_revoke(const char *name, bool json)
{
    struct mo_error err;

    if (admin_apikey_revoke(cli_home(), name, &err) != 0)
        return report_error(&err, json);
    if (json)
        cli_json_print(json_pack("{s:b, s:s}", "ok", 1, "name", name));
    else
        printf("revoked the API key \"%s\"; it stops working within a second\n", name);
    return CLI_EXIT_OK;
}

int
cli_apikey_main(int argc, char **argv)
{
    const char *positional[2] = {NULL, NULL};
    size_t n_positional = 0;
    bool json = false;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            apikey_usage(stdout);
            return CLI_EXIT_OK;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "mailout apikey: unknown option \"%s\"\n", argv[i]);
            apikey_usage(stderr);
            return CLI_EXIT_USAGE;
        } else if (n_positional < 2) {
            positional[n_positional++] = argv[i];
        } else {
            apikey_usage(stderr);
            return CLI_EXIT_USAGE;
        }
    }
    if (n_positional == 1 && strcmp(positional[0], "list") == 0)
        return apikey_list(json);
    if (n_positional == 2 && strcmp(positional[0], "create") == 0)
        return apikey_create(positional[1], json);
    if (n_positional == 2 && strcmp(positional[0], "revoke") == 0)
        return apikey_revoke(positional[1], json);
    apikey_usage(stderr);
    return CLI_EXIT_USAGE;
}
