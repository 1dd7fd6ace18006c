/*
 * check.c - `mailout account check` and `mailout test`: the seed's green
 * Test button on the command line. Both load the stored account, validate
 * it, run account_check(), print each step with its duration and, on
 * failure, the diagnosis: the field at fault, why, and the fix. The outcome
 * is remembered on the account (without the transcript).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "worker/worker.h"

static const char *const field_labels[][2] = {
    {"email", "Email"},
    {"username", "User name"},
    {"password", "Password"},
    {"sender", "Sender's email"},
    {"sender_name", "Sender name"},
    {"host", "Host"},
    {"port", "Port"},
    {"security", "Security"},
    {"auth", "Login method"},
    {"ca_file", "CA file"},
};

/* The form's label for a field ("password" -> "Password"). */
static const char *
field_label(const char *field)
{
    for (size_t i = 0; field != NULL && i < sizeof(field_labels) / sizeof(field_labels[0]); i++)
        if (strcmp(field_labels[i][0], field) == 0)
            return field_labels[i][1];
    return field;
}

static json_t *
result_json(const struct account_check_result *r, bool with_transcript)
{
    json_t *o = json_pack("{s:b, s:o}", "ok", r->ok, "steps", cli_steps_json(r->steps, r->n_steps));

    if (r->ok) {
        json_object_set_new(o, "error", json_null());
        json_object_set_new(o, "diagnosis", json_null());
    } else {
        const struct mo_error *e = &r->err;
        const struct account_diagnosis *d = &r->diagnosis;
        json_object_set_new(o, "error", cli_error_json(e));
        json_object_set_new(o, "diagnosis",
                            json_pack("{s:s?, s:s, s:s, s:s, s:s?, s:b}", "field", d->field,
                                      "title", d->title, "explanation", d->explanation, "fix",
                                      d->fix, "help_url", d->help_url, "temporary", d->temporary));
    }
    if (r->message_id[0]) {
        json_object_set_new(o, "message_id", json_string(r->message_id));
        json_object_set_new(o, "to", json_string(r->to));
    }
    if (with_transcript) {
        json_t *t = json_array();
        for (size_t i = 0; i < r->n_transcript; i++)
            json_array_append_new(t, json_string(r->transcript[i]));
        json_object_set_new(o, "transcript", t);
    }
    return o;
}

static void
print_result_text(const struct account_check_result *r, bool send_test)
{
    for (size_t i = 0; i < r->n_steps; i++)
        printf("  %s %-9s %5lld ms\n", r->steps[i].ok ? "ok    " : "FAILED", r->steps[i].name,
               (long long)r->steps[i].ms);
    if (r->ok) {
        if (send_test)
            printf("Sent: check the inbox of %s for the confirmation letter <%s>.\n", r->to,
                   r->message_id);
        else
            printf("All good: the server accepts this account and its sender. Nothing was "
                   "sent.\n");
        return;
    }
    printf("\n%s\n", r->diagnosis.title);
    if (r->diagnosis.field != NULL)
        printf("  field at fault: %s\n", field_label(r->diagnosis.field));
    printf("  what happened:  %s\n", r->diagnosis.explanation);
    printf("  what to do:     %s\n", r->diagnosis.fix);
    if (r->diagnosis.help_url != NULL)
        printf("  help:           %s\n", r->diagnosis.help_url);
    printf("  server said:    %s\n", r->err.text);
}

static int
run_check(int argc, char **argv, bool send_test)
{
    enum { O_NAME = 400, O_TO, O_JSON, O_TIMEOUT, O_HELP };
    static const struct option opts[] = {
        {"name", required_argument, NULL, O_NAME}, {"to", required_argument, NULL, O_TO},
        {"json", no_argument, NULL, O_JSON},       {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, O_HELP},       {NULL, 0, NULL, 0},
    };
    struct account_store *st = NULL;
    struct account_settings s;
    struct account_issues issues;
    struct account_check_result r;
    struct mo_error err;
    const char *name = "default";
    const char *to = NULL;
    bool json = false;
    long timeout = 0;
    char *outcome = NULL;
    int code;
    int c;

    memset(&s, 0, sizeof(s));
    memset(&r, 0, sizeof(r));
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_NAME)
            name = optarg;
        else if (c == O_TO)
            to = optarg;
        else if (c == O_JSON)
            json = true;
        else if (c == O_TIMEOUT && mo_parse_long(optarg, 1, 3600, &timeout) == 0)
            continue;
        else {
            fprintf(c == O_HELP ? stdout : stderr,
                    "usage: mailout %s [--name N]%s [--timeout SECONDS] [--json]\n",
                    send_test ? "test" : "account check", send_test ? " [--to ADDR]" : "");
            return c == O_HELP ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        }
    }
    code = cli_open_store(&st);
    if (code != CLI_EXIT_OK)
        return code;
    if (account_store_get(st, name, true, &s, &err) != 0) {
        fprintf(stderr, "mailout: %s\n", err.text);
        code = err.category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
        goto out;
    }
    if (timeout > 0)
        s.timeout_s = (int)timeout;
    memset(&issues, 0, sizeof(issues));
    if (account_validate(&s, s.provider_id ? account_provider_find(s.provider_id) : NULL, &issues) >
        0) {
        if (json) {
            json_t *list = json_array();
            for (size_t i = 0; i < issues.n; i++)
                if (issues.items[i].is_error)
                    json_array_append_new(list,
                                          json_pack("{s:s, s:s}", "field", issues.items[i].field,
                                                    "message", issues.items[i].message));
            char *text = json_dumps(json_pack("{s:b, s:o}", "ok", 0, "errors", list),
                                    JSON_INDENT(2) | JSON_ENSURE_ASCII);
            puts(text != NULL ? text : "{}");
            free(text);
        } else {
            fprintf(stderr, "mailout: the account's settings are not valid:\n");
            for (size_t i = 0; i < issues.n; i++)
                if (issues.items[i].is_error)
                    fprintf(stderr, "  %s: %s\n", field_label(issues.items[i].field),
                            issues.items[i].message);
        }
        code = CLI_EXIT_USAGE;
        goto out;
    }
    if (!json)
        printf("%s account \"%s\" (%s, %s port %u)...\n",
               send_test ? "Sending the confirmation letter with" : "Checking", s.name, s.email,
               s.host, s.port);
    account_check(&s, send_test, to, &r);
    {
        json_t *o = result_json(&r, false);
        outcome = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        (void)account_store_record_check(st, s.name, outcome, r.message_id, &err);
    }
    if (json) {
        json_t *o = result_json(&r, true);
        char *text = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII);
        puts(text != NULL ? text : "{}");
        free(text);
        json_decref(o);
    } else {
        print_result_text(&r, send_test);
    }
    if (r.ok) {
        /* A passing check ends a pause the delivery breaker put on this account. */
        (void)worker_account_resume(cli_home(), s.name, NULL);
        code = CLI_EXIT_OK;
    }
    else if (r.err.category == MO_ERR_CONFIG)
        code = CLI_EXIT_USAGE;
    else if (r.err.temporary)
        code = CLI_EXIT_TEMPFAIL;
    else
        code = CLI_EXIT_FAILED;
out:
    free(outcome);
    account_check_result_clear(&r);
    account_settings_clear(&s);
    account_store_close(st);
    return code;
}

int
cli_check_main(int argc, char **argv)
{
    return run_check(argc, argv, false);
}

int
cli_test_main(int argc, char **argv)
{
    return run_check(argc, argv, true);
}
