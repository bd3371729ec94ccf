/* C floors for the network-namespace cases: the same syscalls nsfast makes,
 * with no Python around them.
 *
 *   floor_netns N named PREFIX         add+del of /run/netns/PREFIX<i> as iproute2 does
 *   floor_netns N veth NS_A NS_B PREFIX a veth pair in NS_A with its peer created in NS_B
 *   floor_netns N spawn-joined         vfork+setns into a made-ahead netns+exec /bin/true
 *   floor_netns N paced BURST RATE     BURST spawns into made-ahead netns, RATE per second
 *
 * N may be `serve` (floor_common.h), except for paced: its sample is a whole
 * burst paced over time, not one operation to interleave with the others'
 * samples, so `serve paced` is refused (exit 2) and that mode runs in rounds.
 */
#include "floor_common.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <pthread.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_DIR "/run/netns"
#ifndef IFNAMSIZ
#define IFNAMSIZ 16
#endif

/* ---------------------------------------------------------------- helper thread */

struct job {
    const char *bind_target; /* NULL: return an fd of the new netns instead */
    int result;
};

static void *unshare_worker(void *arg)
{
    struct job *j = arg;
    if (unshare(CLONE_NEWNET) < 0) {
        j->result = -errno;
        return NULL;
    }
    if (j->bind_target) {
        j->result = mount("/proc/thread-self/ns/net", j->bind_target, "none", MS_BIND, NULL)
                        ? -errno : 0;
    } else {
        j->result = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (j->result < 0)
            j->result = -errno;
    }
    return NULL;
}

static int on_helper_thread(const char *bind_target)
{
    pthread_t t;
    struct job j = {bind_target, 0};
    if (pthread_create(&t, NULL, unshare_worker, &j) != 0)
        floor_die("pthread_create");
    pthread_join(t, NULL);
    return j.result;
}

/* ---------------------------------------------------------------- named add+del */

static void named_once(const char *prefix, int i)
{
    char path[256];
    snprintf(path, sizeof path, RUN_DIR "/%s%d", prefix, i);
    mkdir(RUN_DIR, 0755);
    int dir = open(RUN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0 || flock(dir, LOCK_EX) < 0)
        floor_die(RUN_DIR);
    if (mount("", RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0) {
        if (errno != EINVAL || mount(RUN_DIR, RUN_DIR, "none", MS_BIND | MS_REC, NULL) < 0 ||
            mount("", RUN_DIR, "none", MS_SHARED | MS_REC, NULL) < 0)
            floor_die("making " RUN_DIR " shared");
    }
    close(dir);
    int fd = open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
    if (fd < 0)
        floor_die(path);
    close(fd);
    if (on_helper_thread(path) < 0)
        floor_die("unshare+bind");
    if (umount2(path, MNT_DETACH) < 0 || unlink(path) < 0)
        floor_die("remove");
}

/* ---------------------------------------------------------------- veth */

struct nlreq {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[512];
};

static void veth_once(int peer_ns, const char *prefix, int i)
{
    char name[IFNAMSIZ], peer[IFNAMSIZ];
    snprintf(name, sizeof name, "%sa%d", prefix, i);
    snprintf(peer, sizeof peer, "%sb%d", prefix, i);
    struct nlreq r;
    memset(&r, 0, sizeof r);
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    r.nh.nlmsg_type = RTM_NEWLINK;
    r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
    floor_rta_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct rtattr *info = floor_rta_put(&r, IFLA_LINKINFO, NULL, 0);
    floor_rta_put(&r, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = floor_rta_put(&r, IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer_info = floor_rta_put(&r, VETH_INFO_PEER, NULL, 0);
    r.nh.nlmsg_len += sizeof(struct ifinfomsg); /* the peer's own (zeroed) header */
    floor_rta_put(&r, IFLA_IFNAME, peer, strlen(peer) + 1);
    uint32_t fd = peer_ns;
    floor_rta_put(&r, IFLA_NET_NS_FD, &fd, sizeof fd);
    floor_rta_end(&r, peer_info);
    floor_rta_end(&r, data);
    floor_rta_end(&r, info);

    int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0 || send(s, &r, r.nh.nlmsg_len, 0) < 0)
        floor_die("netlink send");
    char buf[1024];
    if (recv(s, buf, sizeof buf, 0) < 0)
        floor_die("netlink recv");
    struct nlmsgerr *err = NLMSG_DATA((struct nlmsghdr *)buf);
    if (err->error) {
        errno = -err->error;
        floor_die("RTM_NEWLINK veth");
    }
    close(s);
}

/* ---------------------------------------------------------------- spawn into a made netns */

static void spawn_into(int ns)
{
    pid_t pid = vfork();
    if (pid == 0) {
        char *argv[] = {"/bin/true", NULL};
        if (setns(ns, CLONE_NEWNET) == 0)
            execv(argv[0], argv);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0)
        floor_die("spawn");
}

/* one burst of spawns paced at `rate` per second into namespaces made ahead */
static long long paced_burst(int burst, double rate)
{
    int *fds = malloc(sizeof(int) * (size_t)burst);
    for (int j = 0; j < burst; j++)
        if (!fds || (fds[j] = on_helper_thread(NULL)) < 0)
            floor_die("unshare");
    long long t0 = floor_now_ns();
    for (int j = 0; j < burst; j++) {
        long long wait = t0 + (long long)(j * 1e9 / rate) - floor_now_ns();
        if (wait > 0) {
            struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
            nanosleep(&ts, NULL);
        }
        spawn_into(fds[j]);
        close(fds[j]);
    }
    long long dt = floor_now_ns() - t0;
    free(fds);
    return dt;
}

static long long spawn_joined_one(void *ctx)
{
    (void)ctx;
    int ns = on_helper_thread(NULL); /* made ahead, as a pool does: not timed */
    if (ns < 0)
        floor_die("unshare");
    long long t0 = floor_now_ns();
    spawn_into(ns);
    long long dt = floor_now_ns() - t0;
    close(ns);
    return dt;
}

/* named and veth number their names; the count goes on across samples (and
 * across a served floor's whole run) */
struct netns_ctx {
    const char *prefix;
    int i;
    int peer_ns; /* veth */
    int burst;   /* paced */
    double rate;
};

static long long named_one(void *ctx)
{
    struct netns_ctx *c = ctx;
    long long t0 = floor_now_ns();
    named_once(c->prefix, c->i++);
    return floor_now_ns() - t0;
}

static long long veth_one(void *ctx)
{
    struct netns_ctx *c = ctx;
    long long t0 = floor_now_ns();
    veth_once(c->peer_ns, c->prefix, c->i++);
    return floor_now_ns() - t0;
}

static long long paced_one(void *ctx)
{
    struct netns_ctx *c = ctx;
    return paced_burst(c->burst, c->rate);
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc < 3)
        floor_die("mode");
    const char *mode = argv[2];
    /* names carry this run's pid: the harness runs the floor in several rounds */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s%d", argc > 3 ? argv[argc - 1] : "fl", getpid() % 10000);
    struct netns_ctx c = {.prefix = prefix, .i = 0, .peer_ns = -1};
    if (!strcmp(mode, "named"))
        return floor_emit(n, named_one, &c);
    if (!strcmp(mode, "veth") && argc == 6) {
        /* the thread sits in NS_A, as the Python side's does; not timed */
        int a = open(argv[3], O_RDONLY | O_CLOEXEC);
        c.peer_ns = open(argv[4], O_RDONLY | O_CLOEXEC);
        if (a < 0 || c.peer_ns < 0 || setns(a, CLONE_NEWNET) < 0)
            floor_die("veth namespaces");
        return floor_emit(n, veth_one, &c);
    }
    if (!strcmp(mode, "spawn-joined"))
        return floor_emit(n, spawn_joined_one, &c);
    if (!strcmp(mode, "paced") && argc >= 5) {
        if (n == FLOOR_SERVE) {
            fprintf(stderr, "%s: paced cannot be served: a sample is a whole burst\n", argv[0]);
            return 2;
        }
        c.burst = atoi(argv[3]);
        c.rate = atof(argv[4]);
        return floor_emit(n, paced_one, &c);
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
