/*
 * served.c - the life of a served state (see served.h): made empty, filled by the
 * world, shared by reference, freed with its last holder.
 */
#include "fakedns/served.h"

#include <stdlib.h>

sts_served *sts_served_new(size_t nhosts, sts_log *log)
{
    sts_served *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (nhosts && !(s->hosts = calloc(nhosts, sizeof(*s->hosts)))) {
        free(s);
        return NULL;
    }
    s->nhosts = nhosts;
    s->refs = 1;
    s->log = log;
    return s;
}

const sts_httpsrv_conf *sts_served_policy_conf(const sts_served *s, size_t slot, int https)
{
    if (!slot)
        return https ? &s->https : &s->http;
    if (slot > s->nmore)
        return NULL;
    return https ? &s->more[slot - 1].https : &s->more[slot - 1].http;
}

sts_served *sts_served_ref(sts_served *s)
{
    s->refs++;
    return s;
}

void sts_served_unref(sts_served *s)
{
    if (!s || --s->refs > 0)
        return;
    sts_debug(s->log, "served state %u released", s->gen);
    for (size_t i = 0; i < s->nhosts; i++)
        SSL_CTX_free(s->hosts[i].ctx);
    free(s->hosts);
    sts_dns_zone_free(s->zone);
    free(s->policy_ctype);
    free(s->policy_body);
    for (size_t i = 0; i < s->nmore; i++)
        free(s->more[i].body);
    free(s->more);
    free(s);
}
