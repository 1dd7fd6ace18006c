#!/usr/bin/env bash
# bench/listener/postfix.sh - a private Postfix instance for the listener benchmark:
# smtpd on 127.0.0.1:PORT accepting from 127.0.0.0/8 (mynetworks, no AUTH, no TLS), every
# message delivered by discard(8), so what is measured is acceptance into Postfix's queue
# (cleanup writes and fsyncs the queue file before smtpd answers 250). in_flow_delay is 0 so
# Postfix is not slowed down on purpose when its queue manager lags.
#   postfix.sh start DIR PORT     configure under DIR (etc, spool, data, maillog) and start
#   postfix.sh stop DIR           stop it (abort and kill the master if it lingers)
# Needs root (Postfix's master runs as root and drops to "postfix") and the postfix package.
set -euo pipefail
export PATH="$PATH:/usr/sbin"
cmd=${1:?start|stop}
dir=${2:?DIR}

if [[ $cmd == stop ]]; then
    [[ -f $dir/etc/main.cf ]] || exit 0
    pid=$(cat "$dir/spool/pid/master.pid" 2>/dev/null | tr -d ' ' || true)
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    for _ in $(seq 50); do
        [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    postfix -c "$dir/etc" abort >/dev/null 2>&1 || true
    [[ -n $pid ]] && kill -9 "$pid" 2>/dev/null || true
    exit 0
fi

port=${3:?PORT}
mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
chown postfix:postfix "$dir/data"
cat >"$dir/etc/master.cf" <<MASTER
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
MASTER
: >"$dir/etc/main.cf"
postconf -c "$dir/etc" -e \
    "compatibility_level=3.6" \
    "queue_directory=$dir/spool" \
    "data_directory=$dir/data" \
    "maillog_file=$dir/maillog" \
    "maillog_file_prefixes=$dir" \
    "myhostname=postfix.bench" \
    "mydomain=bench.test" \
    "myorigin=bench.test" \
    "mydestination=" \
    "relayhost=" \
    "inet_interfaces=127.0.0.1" \
    "inet_protocols=ipv4" \
    "mynetworks=127.0.0.0/8" \
    "default_transport=discard:bench" \
    "relay_transport=discard:bench" \
    "local_transport=discard:bench" \
    "alias_maps=" \
    "alias_database=" \
    "smtpd_relay_restrictions=permit_mynetworks, reject" \
    "smtpd_recipient_restrictions=permit_mynetworks, reject" \
    "smtpd_peername_lookup=no" \
    "smtpd_client_connection_count_limit=0" \
    "smtpd_client_connection_rate_limit=0" \
    "smtpd_client_message_rate_limit=0" \
    "smtpd_client_recipient_rate_limit=0" \
    "in_flow_delay=0s" \
    "default_process_limit=100" \
    "message_size_limit=26214400" \
    "smtputf8_enable=yes" \
    "biff=no" \
    "append_dot_mydomain=no" \
    "shlib_directory=/usr/lib/postfix" \
    "meta_directory=/etc/postfix"
postfix -c "$dir/etc" check
postfix -c "$dir/etc" start >/dev/null 2>&1
