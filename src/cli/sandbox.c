/*
 * sandbox.c - `mailout sandbox ...`: the local test inbox (sandbox.h) from
 * the command line: the account the first command makes, the letters, and
 * the fault switch that `mailout serve`'s sandbox receiver reads.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sandbox/sandbox.h"

static void
sandbox_usage(FILE *out)
{
    fputs("usage: mailout sandbox ensure-account\n"
          "       mailout sandbox list [--json]\n"
          "       mailout sandbox show ID\n"
          "       mailout sandbox clear\n"
          "       mailout sandbox fault [KIND [--next N | --share PERCENT] | off]\n"
          "\n"
          "The sandbox is a test inbox in the data folder: an account with provider\n"
          "\"sandbox\" delivers there through `mailout serve`'s own SMTP receiver on\n"
          "127.0.0.1 (STARTTLS and AUTH, as with Gmail), not to the internet.\n"
          "ensure-account makes the sandbox account \"default\" when there is no account.\n"
          "fault KIND makes the receiver answer as a real provider does, for the next N\n"
          "sessions (default 1) or a share of them. KIND is one of:\n"
          "  auth-535       535-5.7.8 Username and Password not accepted (Gmail)\n"
          "  auth-534       534-5.7.9 Application-specific password required (Gmail)\n"
          "  greeting-421   421 4.7.0 Try again later, closing connection\n"
          "  data-550-545   550 5.4.5 Daily user sending limit exceeded\n"
          "  drop-mid-data  the connection closes in the middle of the message\n"
          "  stall          no answer after the message (the client times out)\n",
          out);
}

static int
fail(const struct mo_error *err)
{
    fprintf(stderr, "mailout sandbox: %s\n", err->text);
    return err->category == MO_ERR_CONFIG ? CLI_EXIT_USAGE : CLI_EXIT_FAILED;
}

static void
print_fault(const struct sandbox_fault *f)
{
    if (f->kind == SANDBOX_FAULT_NONE)
        printf("fault: off\n");
    else if (f->is_share)
        printf("fault: %s for %u%% of sessions\n", sandbox_fault_name(f->kind), f->value);
    else
        printf("fault: %s for the next %u session%s\n", sandbox_fault_name(f->kind), f->value,
               f->value == 1 ? "" : "s");
}

static int
cmd_fault(int argc, char **argv)
{
    struct sandbox_fault f;
    struct mo_error err;
    long v;

    memset(&f, 0, sizeof(f));
    if (argc == 1) {
        sandbox_fault_get(cli_home(), &f);
        print_fault(&f);
        return CLI_EXIT_OK;
    }
    if (sandbox_fault_parse(argv[1], &f.kind) != 0) {
        fprintf(stderr, "mailout sandbox: unknown fault \"%s\"\n", argv[1]);
        sandbox_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    f.value = 1;
    if (argc == 4 && strcmp(argv[2], "--next") == 0 &&
        mo_parse_long(argv[3], 1, 1000000, &v) == 0) {
        f.value = (unsigned)v;
    } else if (argc == 4 && strcmp(argv[2], "--share") == 0 &&
               mo_parse_long(argv[3], 1, 100, &v) == 0) {
        f.value = (unsigned)v;
        f.is_share = true;
    } else if (argc != 2) {
        fprintf(stderr, "mailout sandbox: fault KIND [--next N (1-1000000) | --share PERCENT "
                        "(1-100)]\n");
        return CLI_EXIT_USAGE;
    }
    if (sandbox_prepare(cli_home(), &err) != 0 || sandbox_fault_set(cli_home(), &f, &err) != 0)
        return fail(&err);
    print_fault(&f);
    return CLI_EXIT_OK;
}

static int
cmd_list(bool as_json)
{
    struct sandbox_letter *v = NULL;
    struct mo_error err;
    size_t n = 0;
    json_t *arr;

    if (sandbox_list(cli_home(), &v, &n, &err) != 0)
        return fail(&err);
    if (as_json) {
        arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "id", v[i].id,
                                                 "received_ms", (json_int_t)v[i].received_ms,
                                                 "size", (json_int_t)v[i].size, "from", v[i].from,
                                                 "to", v[i].to, "subject", v[i].subject));
        cli_json_print(arr);
    } else {
        if (n == 0)
            printf("The sandbox inbox is empty.\n");
        for (size_t i = 0; i < n; i++)
            printf("%s  %-30.30s  %-30.30s  %s\n", v[i].id, v[i].from, v[i].to, v[i].subject);
    }
    free(v);
    return CLI_EXIT_OK;
}

int
cli_sandbox_main(int argc, char **argv)
{
    struct mo_error err;
    const char *cmd = argc > 1 ? argv[1] : "";

    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        sandbox_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "ensure-account") == 0 && argc == 2) {
        bool created = false;

        if (sandbox_account_ensure(cli_home(), &created, &err) != 0)
            return fail(&err);
        printf(created ? "mailout sandbox: made the account \"default\": its letters go to the "
                         "sandbox inbox (admin panel, or `mailout sandbox list`)\n"
                       : "mailout sandbox: there is an account already; nothing changed\n");
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "list") == 0 && (argc == 2 || (argc == 3 && strcmp(argv[2], "--json") == 0)))
        return cmd_list(argc == 3);
    if (strcmp(cmd, "show") == 0 && argc == 3) {
        char *data = NULL;
        size_t len = 0;

        if (sandbox_read(cli_home(), argv[2], &data, &len, &err) != 0)
            return fail(&err);
        fwrite(data, 1, len, stdout);
        free(data);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "clear") == 0 && argc == 2) {
        size_t n = 0;

        if (sandbox_clear(cli_home(), &n, &err) != 0)
            return fail(&err);
        printf("mailout sandbox: %zu letter%s deleted\n", n, n == 1 ? "" : "s");
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "fault") == 0)
        return cmd_fault(argc - 1, argv + 1);
    sandbox_usage(stderr);
    return CLI_EXIT_USAGE;
}
