/*
 * detect.c - which mail service and server an address uses: the address's
 * domain in the provider table, else the domain's MX records (a custom
 * domain hosted at Google Workspace, Microsoft 365, Yandex 360...), else a
 * probe of smtp.DOMAIN and mail.DOMAIN on the usual submission ports.
 *
 * Why: a shop owner knows their address, not their SMTP server. The old
 * help article sent them to each provider's help pages; this answers in a
 * second for the common cases and says how it knows.
 *
 * DNS uses glibc's resolver (res_nquery, ns_parserr) with one retry and a
 * short timeout. With opt->dns_server ("IP:PORT", IPv4; for tests) every
 * lookup, the probes' addresses included, goes to that server only; the
 * probes then connect to the address found and check the certificate for
 * that address, since the system resolver would not know the name.
 * A probe counts when TLS completes (implicit or STARTTLS) and the server
 * offers AUTH; nothing is sent beyond EHLO, STARTTLS and QUIT.
 * Leaves out: autoconfig/autodiscover XML (RFC 6186 SRV records and
 * Mozilla's ISPDB over HTTP), IPv6 DNS servers for dns_server.
 * RFCs: 1035 (DNS), 5321 5.1 (MX), 7505 (null MX), 6409 and 8314 (ports).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account/account.h"
#include "mime/mime.h"

#define DETECT_TIMEOUT_MS_DEFAULT 3000
#define DETECT_MX_MAX 16
#define DETECT_ANSWER_MAX 8192 /* bytes; over UDP's 512 the resolver retries over TCP */

struct detect_mx {
    unsigned preference;
    char host[NS_MAXDNAME];
};

/* One probe: a host prefix, a port and how TLS starts there. In this order. */
static const struct {
    const char *prefix;
    unsigned port;
    enum smtp_security security;
} detect_probes[] = {
    {"smtp.", 465, SMTP_SECURITY_TLS},     {"smtp.", 587, SMTP_SECURITY_STARTTLS},
    {"mail.", 465, SMTP_SECURITY_TLS},     {"mail.", 587, SMTP_SECURITY_STARTTLS},
    {"smtp.", 25, SMTP_SECURITY_STARTTLS}, {"mail.", 25, SMTP_SECURITY_STARTTLS},
};

/* The provider's own server: STARTTLS on its submission port when it has one, else TLS. */
static void
detect_fill_provider(struct account_detection *out, const struct account_provider *p)
{
    out->provider = p;
    snprintf(out->host, sizeof(out->host), "%s", p->host);
    if (p->port_starttls != 0) {
        out->port = p->port_starttls;
        out->security = SMTP_SECURITY_STARTTLS;
    } else {
        out->port = p->port_tls;
        out->security = SMTP_SECURITY_TLS;
    }
}

/*
 * Sets up a private resolver state: system configuration, or only dns_server
 * ("IP:PORT"). No search list: "example.com" is asked as is.
 * Errors: CONFIG (field "dns_server") for a malformed dns_server; DNS when
 * the resolver cannot start.
 */
static int
detect_dns_open(struct __res_state *st, const char *dns_server, int timeout_ms,
                struct mo_error *err)
{
    memset(st, 0, sizeof(*st));
    if (res_ninit(st) != 0) {
        mo_error_set(err, MO_ERR_DNS, NULL, "the system's DNS resolver could not start");
        return -1;
    }
    st->retrans = timeout_ms >= 2000 ? timeout_ms / 1000 : 1;
    st->retry = 1;
    st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
    if (dns_server != NULL) {
        struct sockaddr_in sa;
        char ip[INET_ADDRSTRLEN];
        const char *colon = strrchr(dns_server, ':');
        long port = 53;
        size_t ip_len = colon != NULL ? (size_t)(colon - dns_server) : strlen(dns_server);

        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        if (ip_len >= sizeof(ip) ||
            (colon != NULL && mo_parse_long(colon + 1, 1, 65535, &port) != 0)) {
            res_nclose(st);
            mo_error_set(err, MO_ERR_CONFIG, "dns_server",
                         "the DNS server must be an IPv4 address and port such as "
                         "127.0.0.1:5353");
            return -1;
        }
        memcpy(ip, dns_server, ip_len);
        ip[ip_len] = '\0';
        if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
            res_nclose(st);
            mo_error_set(err, MO_ERR_CONFIG, "dns_server",
                         "the DNS server must be an IPv4 address and port such as "
                         "127.0.0.1:5353");
            return -1;
        }
        sa.sin_port = htons((uint16_t)port);
        st->nsaddr_list[0] = sa;
        st->nscount = 1;
    }
    return 0;
}

static int
mx_compare(const void *a, const void *b)
{
    const struct detect_mx *x = a;
    const struct detect_mx *y = b;

    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    return strcmp(x->host, y->host);
}

/* The domain's MX hosts by preference into mx (at most DETECT_MX_MAX); the count.
 * No answer, NXDOMAIN, a timeout or a null MX all give 0. */
static size_t
detect_query_mx(struct __res_state *st, const char *domain, struct detect_mx *mx)
{
    unsigned char answer[DETECT_ANSWER_MAX];
    ns_msg msg;
    size_t n = 0;
    int len;

    len = res_nquery(st, domain, ns_c_in, ns_t_mx, answer, sizeof(answer));
    if (len < 0 || len > (int)sizeof(answer) || ns_initparse(answer, len, &msg) < 0)
        return 0;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an) && n < DETECT_MX_MAX; i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            break;
        if (ns_rr_type(rr) != ns_t_mx || ns_rr_rdlen(rr) < 3)
            continue;
        if (ns_name_uncompress(ns_msg_base(msg), ns_msg_end(msg), ns_rr_rdata(rr) + 2, mx[n].host,
                               sizeof(mx[n].host)) < 0)
            continue;
        mx[n].preference = ns_get16(ns_rr_rdata(rr));
        /* RFC 7505: "0 ." says the domain takes no mail; it names no server. */
        if (mx[n].host[0] == '\0' || strcmp(mx[n].host, ".") == 0)
            continue;
        n++;
    }
    qsort(mx, n, sizeof(mx[0]), mx_compare);
    return n;
}

/* The first IPv4 address of name through st, as text; false when there is none. */
static bool
detect_query_a(struct __res_state *st, const char *name, char *ip, size_t ip_size)
{
    unsigned char answer[DETECT_ANSWER_MAX];
    ns_msg msg;
    int len;

    len = res_nquery(st, name, ns_c_in, ns_t_a, answer, sizeof(answer));
    if (len < 0 || len > (int)sizeof(answer) || ns_initparse(answer, len, &msg) < 0)
        return false;
    for (int i = 0; i < ns_msg_count(msg, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
            break;
        if (ns_rr_type(rr) == ns_t_a && ns_rr_rdlen(rr) == 4)
            return inet_ntop(AF_INET, ns_rr_rdata(rr), ip, (socklen_t)ip_size) != NULL;
    }
    return false;
}

/* One probe: true when host:port completed TLS and offered AUTH. dns_error is set when
 * the name does not resolve (so its other ports need no try). */
static bool
detect_probe_one(const char *connect_host, unsigned port, enum smtp_security security,
                 const struct account_detect_options *opt, int timeout_ms, bool *dns_error)
{
    struct smtp_options so;
    struct smtp_session *sess = NULL;
    struct mo_error err;
    bool ok = false;

    memset(&so, 0, sizeof(so));
    so.host = connect_host;
    so.port = port;
    so.security = security;
    so.ca_file = opt->ca_file;
    smtp_timeouts_default(&so.timeouts);
    smtp_timeouts_cap(&so.timeouts, timeout_ms);
    sess = smtp_session_new(&so, &err);
    if (sess == NULL)
        return false;
    if (smtp_session_open(sess, &err) == 0) {
        const struct smtp_caps *caps = smtp_session_caps(sess);
        ok = caps != NULL && (caps->flags & SMTP_CAP_AUTH) != 0;
        smtp_session_quit(sess, NULL);
    } else {
        *dns_error = err.category == MO_ERR_DNS;
        mo_log(MO_LOG_DEBUG, "detect: %s port %u (%s): %s", connect_host, port,
               smtp_security_name(security), err.text);
    }
    smtp_session_free(sess);
    return ok;
}

/* Probes smtp.DOMAIN and mail.DOMAIN in detect_probes order; true at the first success. */
static bool
detect_probe(struct __res_state *st, const char *domain, const struct account_detect_options *opt,
             int timeout_ms, struct account_detection *out)
{
    /* Per prefix: the name, what to connect to, and whether it is known not to resolve. */
    struct {
        char name[NS_MAXDNAME];
        char connect[NS_MAXDNAME];
        bool dead;
    } hosts[2];
    static const char *const prefixes[2] = {"smtp.", "mail."};

    memset(hosts, 0, sizeof(hosts));
    for (size_t h = 0; h < 2; h++) {
        int n = snprintf(hosts[h].name, sizeof(hosts[h].name), "%s%s", prefixes[h], domain);
        hosts[h].dead = n < 0 || (size_t)n >= sizeof(hosts[h].name);
        memcpy(hosts[h].connect, hosts[h].name, sizeof(hosts[h].connect));
        if (!hosts[h].dead && opt->dns_server != NULL)
            hosts[h].dead =
                !detect_query_a(st, hosts[h].name, hosts[h].connect, sizeof(hosts[h].connect));
    }
    for (size_t i = 0; i < sizeof(detect_probes) / sizeof(detect_probes[0]); i++) {
        size_t h = strcmp(detect_probes[i].prefix, prefixes[0]) == 0 ? 0 : 1;
        bool dns_error = false;

        if (hosts[h].dead)
            continue;
        if (detect_probe_one(hosts[h].connect, detect_probes[i].port, detect_probes[i].security,
                             opt, timeout_ms, &dns_error)) {
            out->source = ACCOUNT_DETECT_PROBE;
            snprintf(out->host, sizeof(out->host), "%s", hosts[h].name);
            out->port = detect_probes[i].port;
            out->security = detect_probes[i].security;
            snprintf(out->explanation, sizeof(out->explanation),
                     "%s answered on port %u with %s and offers login", hosts[h].name, out->port,
                     out->security == SMTP_SECURITY_TLS ? "SSL/TLS" : "STARTTLS");
            return true;
        }
        if (dns_error)
            hosts[h].dead = true;
    }
    return false;
}

int
account_detect(const char *email, const struct account_detect_options *opt,
               struct account_detection *out, struct mo_error *err)
{
    static const struct account_detect_options no_options;
    struct mime_address a = {0};
    struct __res_state st;
    bool dns_open = false;
    struct detect_mx mx[DETECT_MX_MAX];
    size_t n_mx = 0;
    const struct account_provider *p;
    int timeout_ms;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (opt == NULL)
        opt = &no_options;
    timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : DETECT_TIMEOUT_MS_DEFAULT;
    if (mime_address_parse(email, "email", &a, err) != 0)
        goto out;
    /* 1. The domain itself: gmail.com, yandex.ru, ... */
    p = account_provider_for_domain(a.domain_ascii);
    if (p != NULL) {
        out->source = ACCOUNT_DETECT_DOMAIN;
        detect_fill_provider(out, p);
        snprintf(out->explanation, sizeof(out->explanation), "%s addresses are %s", a.domain,
                 p->name);
        rc = 0;
        goto out;
    }
    if (a.domain_ascii[0] == '[') {
        snprintf(out->explanation, sizeof(out->explanation),
                 "%s is an address literal: there is no domain to look up", a.domain);
        rc = 0;
        goto out;
    }
    if (detect_dns_open(&st, opt->dns_server, timeout_ms, err) != 0) {
        if (err != NULL && err->category == MO_ERR_CONFIG)
            goto out;
        /* No resolver: nothing to detect, which is not the address's fault. */
        snprintf(out->explanation, sizeof(out->explanation),
                 "the DNS resolver could not start, so %s could not be looked up", a.domain);
        mo_error_clear(err);
        rc = 0;
        goto out;
    }
    dns_open = true;
    /* 2. The MX records: a custom domain hosted by a known provider. */
    n_mx = detect_query_mx(&st, a.domain_ascii, mx);
    for (size_t i = 0; i < n_mx; i++) {
        p = account_provider_for_mx(mx[i].host);
        if (p == NULL)
            continue;
        out->source = ACCOUNT_DETECT_MX;
        detect_fill_provider(out, p);
        snprintf(out->mx_host, sizeof(out->mx_host), "%s", mx[i].host);
        snprintf(out->explanation, sizeof(out->explanation), "mail for %s goes to %s, which is %s",
                 a.domain, mx[i].host, p->name);
        rc = 0;
        goto out;
    }
    /* 3. A server that answers on smtp. or mail. */
    if (!opt->no_probe && detect_probe(&st, a.domain_ascii, opt, timeout_ms, out)) {
        rc = 0;
        goto out;
    }
    snprintf(out->explanation, sizeof(out->explanation), "%s: %s%.100s%s; %s", a.domain,
             n_mx == 0 ? "no MX records found" : "its mail goes to ", n_mx == 0 ? "" : mx[0].host,
             n_mx == 0 ? "" : ", which is not a mail service mailout knows",
             opt->no_probe ? "the smtp. and mail. servers were not tried"
                           : "no smtp. or mail. server answered with TLS and login");
    rc = 0;
out:
    if (dns_open)
        res_nclose(&st);
    mime_address_clear(&a);
    return rc;
}
