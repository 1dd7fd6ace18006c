/*
 * net.c - the listening address of a server ("IP:PORT", "[IPv6]:PORT"),
 * shared by the HTTP server (admin) and the SMTP listener.
 *
 * Why one parser: both accept the same syntax and give the same advice; only
 * the config key and the example port differ. Leaves out: name lookup
 * ("localhost" aside), interface names, IPv6 zone ids.
 */
#include "common/common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* The example port of the error texts: what follows default_text's last ':'. */
static const char *
example_port(const char *default_text)
{
    const char *colon = strrchr(default_text, ':');

    return colon != NULL ? colon + 1 : "25";
}

int
mo_listen_parse(const char *text, const char *default_text, const char *field,
                struct sockaddr_storage *out, socklen_t *out_len, bool *is_loopback,
                struct mo_error *err)
{
    const char *t = text != NULL && text[0] != '\0' ? text : default_text;
    char host[64];
    const char *port_text;
    size_t host_len;
    long port;
    bool v6 = t[0] == '[';
    bool loopback;

    memset(out, 0, sizeof(*out));
    if (is_loopback != NULL)
        *is_loopback = false;
    if (v6) {
        const char *close = strchr(t, ']');

        if (close == NULL || close[1] != ':')
            goto bad;
        host_len = (size_t)(close - t - 1);
        port_text = close + 2;
        if (host_len == 0 || host_len >= sizeof(host))
            goto bad;
        memcpy(host, t + 1, host_len);
    } else {
        const char *colon = strrchr(t, ':');

        if (colon == NULL)
            goto bad;
        host_len = (size_t)(colon - t);
        port_text = colon + 1;
        if (memchr(t, ':', host_len) != NULL) {
            mo_error_set(err, MO_ERR_CONFIG, field,
                         "\"%.100s\": write an IPv6 address in brackets, such as [::1]:%s", t,
                         example_port(default_text));
            return -1;
        }
        if (host_len == 0 || host_len >= sizeof(host))
            goto bad;
        memcpy(host, t, host_len);
    }
    host[host_len] = '\0';
    if (mo_parse_long(port_text, 0, 65535, &port) != 0) {
        mo_error_set(err, MO_ERR_CONFIG, field,
                     "\"%.100s\": the port must be a number from 0 to 65535", t);
        return -1;
    }
    if (v6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)out;

        if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
            goto bad;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons((uint16_t)port);
        *out_len = sizeof(*sa);
        loopback = IN6_IS_ADDR_LOOPBACK(&sa->sin6_addr) ||
                   (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr) && sa->sin6_addr.s6_addr[12] == 127);
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)out;

        if (strcmp(host, "localhost") == 0)
            memcpy(host, "127.0.0.1", sizeof("127.0.0.1"));
        if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
            goto bad;
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        *out_len = sizeof(*sa);
        loopback = (ntohl(sa->sin_addr.s_addr) >> 24) == 127;
    }
    if (is_loopback != NULL)
        *is_loopback = loopback;
    return 0;
bad:
    mo_error_set(err, MO_ERR_CONFIG, field,
                 "\"%.100s\" is not an address to listen on: write IP:PORT, such as "
                 "127.0.0.1:%s, or [IPv6]:PORT, such as [::1]:%s",
                 t, example_port(default_text), example_port(default_text));
    return -1;
}
