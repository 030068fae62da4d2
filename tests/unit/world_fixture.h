/*
 * world_fixture.h - a fake world (fakedns/world.h) on a thread and loop of its own, as
 * `ststest run` has it, for unit tests that drive the sender against it (include it
 * after <cmocka.h>). Each test file passes its own port_base so that files running at
 * once never share a port: the world listens on port_base + 53, 25, 443 and 80.
 */
#ifndef STS_WORLD_FIXTURE_H
#define STS_WORLD_FIXTURE_H

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/scenario.h"
#include "fakedns/world.h"

/* ---- a world on its own thread and loop ---- */

/* The world is started here, then its loop runs on a thread of its own until
 * world_end() asks it (uv_async_send) to stop; the thread is joined before the world
 * is freed, so the loop is only ever used by one thread at a time. */
typedef struct world_thread {
    pthread_t tid;
    uv_loop_t loop;
    uv_async_t stop;
    sts_scenario *scn;
    sts_world *world;
    char dns[64], ca_file[512];
    int smtp_port, https_port;
} world_thread;

static inline void world_stop_cb(uv_async_t *a)
{
    world_thread *wt = a->data;
    sts_world_stop(wt->world, NULL, NULL);
    uv_close((uv_handle_t *)&wt->stop, NULL);
}

static inline void *world_main(void *arg)
{
    world_thread *wt = arg;
    uv_run(&wt->loop, UV_RUN_DEFAULT);
    return NULL;
}

static inline void world_start(world_thread *wt, int port_base, const char *text)
{
    memset(wt, 0, sizeof(*wt));
    char err[512] = "";
    wt->scn = sts_scenario_parse(text, strlen(text), "t.yaml", err, sizeof(err));
    if (!wt->scn)
        fail_msg("scenario: %s", err);
    assert_int_equal(uv_loop_init(&wt->loop), 0);
    sts_world_opts opts = {
        .dns_port = port_base + 53, .smtp_port = port_base + 25, .https_port = port_base + 443,
        .http_port = port_base + 80};
    if (sts_world_start(&wt->loop, wt->scn, &opts, &wt->world, err, sizeof(err)))
        fail_msg("world: %s", err);
    json_t *r = sts_world_ready(wt->world);
    snprintf(wt->dns, sizeof(wt->dns), "%s", json_string_value(json_object_get(r, "dns")));
    snprintf(wt->ca_file, sizeof(wt->ca_file), "%s",
             json_string_value(json_object_get(r, "ca_file")));
    wt->smtp_port = (int)json_integer_value(json_object_get(r, "smtp_port"));
    wt->https_port = (int)json_integer_value(json_object_get(r, "https_port"));
    json_decref(r);
    uv_async_init(&wt->loop, &wt->stop, world_stop_cb);
    wt->stop.data = wt;
    assert_int_equal(pthread_create(&wt->tid, NULL, world_main, wt), 0);
}

static inline void world_end(world_thread *wt)
{
    uv_async_send(&wt->stop);
    pthread_join(wt->tid, NULL);
    sts_world_free(wt->world);
    assert_int_equal(uv_loop_close(&wt->loop), 0);
    sts_scenario_free(wt->scn);
}

#endif
