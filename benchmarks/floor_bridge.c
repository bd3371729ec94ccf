/* C floor for a bridged spawn (benchmarks/cases_bridge.py): what
 * nsfast.spawn(argv, netns=bridge) makes the kernel do, with no Python and no
 * lease file around it.  One sample:
 *
 *   a new network namespace (unshare on a helper thread, kept as an fd);
 *   a veth pair, its host end attached to the bridge and up (and, with
 *   ISOLATED=1, the bridge port flag isolated), its peer eth0 made inside;
 *   inside, on a netlink socket made there: lo up, eth0 up, ADDR/PREFIX on
 *   eth0, the default route via GATEWAY;
 *   vfork, setns into the namespace, exec /bin/true, wait.
 *
 *   floor_bridge N BRIDGE FIRST_ADDR PREFIX GATEWAY ISOLATED
 *
 * The i-th sample takes FIRST_ADDR + i.  N may be `serve` (floor_common.h).
 * The namespace, and with it the veth pair, ends when the child has exited
 * and the fd is closed, as nsfast's does.
 */
#include "floor_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---------------------------------------------------------------- netlink messages */

/* one request: the netlink header, the family header (ifinfomsg, ifaddrmsg
 * or rtmsg) and its attributes */
struct msg {
    struct nlmsghdr nh;
    char body[480];
};

static void *begin(struct msg *m, int type, int flags, size_t family_header)
{
    memset(m, 0, sizeof *m);
    m->nh.nlmsg_len = NLMSG_LENGTH(family_header);
    m->nh.nlmsg_type = type;
    m->nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    return NLMSG_DATA(&m->nh);
}

/* send msgs in one datagram, as nsfast does, and read each acknowledgement */
static void exchange(int sock, struct msg *msgs, int count, const char *what)
{
    char out[4096];
    size_t len = 0;
    for (int i = 0; i < count; i++) {
        msgs[i].nh.nlmsg_seq = i + 1;
        memcpy(out + len, &msgs[i], msgs[i].nh.nlmsg_len);
        len += NLMSG_ALIGN(msgs[i].nh.nlmsg_len);
    }
    if (send(sock, out, len, 0) < 0)
        floor_die(what);
    for (int acked = 0; acked < count;) {
        char in[4096];
        ssize_t got = recv(sock, in, sizeof in, 0);
        if (got < 0)
            floor_die(what);
        for (struct nlmsghdr *h = (struct nlmsghdr *)in; NLMSG_OK(h, (size_t)got);
             h = NLMSG_NEXT(h, got)) {
            if (h->nlmsg_type != NLMSG_ERROR)
                continue;
            struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error) {
                errno = -e->error;
                floor_die(what);
            }
            acked++;
        }
    }
}

static void link_up(struct msg *m, int index)
{
    struct ifinfomsg *ifi = begin(m, RTM_NEWLINK, 0, sizeof *ifi);
    ifi->ifi_index = index;
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
}

/* ---------------------------------------------------------------- threads that move */

struct job {
    int ns;     /* -1: make a new namespace and return its fd */
    int result; /* the fd, or -errno */
};

static void *netns_worker(void *arg)
{
    struct job *j = arg;
    if (j->ns < 0 ? unshare(CLONE_NEWNET) : setns(j->ns, CLONE_NEWNET)) {
        j->result = -errno;
        return NULL;
    }
    j->result = j->ns < 0 ? open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
                          : socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (j->result < 0)
        j->result = -errno;
    return NULL;
}

/* ns < 0: a new network namespace as an fd; else a netlink socket inside ns */
static int on_thread(int ns)
{
    pthread_t t;
    struct job j = {ns, 0};
    if (pthread_create(&t, NULL, netns_worker, &j) != 0)
        floor_die("pthread_create");
    pthread_join(t, NULL);
    if (j.result < 0) {
        errno = -j.result;
        floor_die(ns < 0 ? "unshare(net)" : "netlink socket in the namespace");
    }
    return j.result;
}

/* ---------------------------------------------------------------- one sample */

struct bridge_ctx {
    int bridge;         /* the bridge's ifindex */
    int isolated;
    uint32_t first;     /* host order */
    int prefix;
    struct in_addr gateway;
    int host;           /* a netlink socket in the host's namespace */
    int i;
};

static void wire(struct bridge_ctx *c, int ns)
{
    char name[IFNAMSIZ];
    snprintf(name, sizeof name, "f%d_%d", getpid() % 100000, c->i);
    struct msg m[4];

    struct ifinfomsg *ifi = begin(&m[0], RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifi);
    ifi->ifi_flags = ifi->ifi_change = IFF_UP;
    floor_rta_put(&m[0], IFLA_IFNAME, name, strlen(name) + 1);
    floor_rta_put(&m[0], IFLA_MASTER, &c->bridge, sizeof c->bridge);
    struct rtattr *info = floor_rta_put(&m[0], IFLA_LINKINFO, NULL, 0);
    floor_rta_put(&m[0], IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = floor_rta_put(&m[0], IFLA_INFO_DATA, NULL, 0);
    struct rtattr *peer = floor_rta_put(&m[0], VETH_INFO_PEER, NULL, 0);
    m[0].nh.nlmsg_len += sizeof(struct ifinfomsg); /* the peer's own header */
    floor_rta_put(&m[0], IFLA_IFNAME, "eth0", 5);
    uint32_t fd = ns;
    floor_rta_put(&m[0], IFLA_NET_NS_FD, &fd, sizeof fd);
    floor_rta_end(&m[0], peer);
    floor_rta_end(&m[0], data);
    floor_rta_end(&m[0], info);
    int count = 1;
    if (c->isolated) {
        begin(&m[1], RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
        floor_rta_put(&m[1], IFLA_IFNAME, name, strlen(name) + 1);
        struct rtattr *li = floor_rta_put(&m[1], IFLA_LINKINFO, NULL, 0);
        floor_rta_put(&m[1], IFLA_INFO_SLAVE_KIND, "bridge", 7);
        struct rtattr *sd = floor_rta_put(&m[1], IFLA_INFO_SLAVE_DATA, NULL, 0);
        uint8_t on = 1;
        floor_rta_put(&m[1], IFLA_BRPORT_ISOLATED, &on, 1);
        floor_rta_end(&m[1], sd);
        floor_rta_end(&m[1], li);
        count = 2;
    }
    exchange(c->host, m, count, "veth pair on the bridge");

    int inside = on_thread(ns);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "eth0");
    if (ioctl(inside, SIOCGIFINDEX, &ifr) < 0)
        floor_die("eth0's index");
    int eth0 = ifr.ifr_ifindex;
    link_up(&m[0], 1);
    link_up(&m[1], eth0);
    struct ifaddrmsg *ifa = begin(&m[2], RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = c->prefix;
    ifa->ifa_index = eth0;
    struct in_addr addr = {htonl(c->first + c->i)};
    floor_rta_put(&m[2], IFA_LOCAL, &addr, sizeof addr);
    floor_rta_put(&m[2], IFA_ADDRESS, &addr, sizeof addr);
    struct rtmsg *rt = begin(&m[3], RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rt);
    rt->rtm_family = AF_INET;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    floor_rta_put(&m[3], RTA_GATEWAY, &c->gateway, sizeof c->gateway);
    floor_rta_put(&m[3], RTA_OIF, &eth0, sizeof eth0);
    exchange(inside, m, 4, "configuring eth0");
    close(inside);
}

static long long bridged_one(void *ctx)
{
    struct bridge_ctx *c = ctx;
    long long t0 = floor_now_ns();
    int ns = on_thread(-1);
    wire(c, ns);
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
    close(ns);
    c->i++;
    return floor_now_ns() - t0;
}

int main(int argc, char **argv)
{
    int n = floor_count(argc, argv);
    if (argc != 7) {
        fprintf(stderr, "usage: %s N BRIDGE FIRST_ADDR PREFIX GATEWAY ISOLATED\n", argv[0]);
        return 2;
    }
    static struct bridge_ctx c;
    struct in_addr first;
    c.bridge = if_nametoindex(argv[2]);
    if (!c.bridge || inet_pton(AF_INET, argv[3], &first) != 1 ||
        inet_pton(AF_INET, argv[5], &c.gateway) != 1)
        floor_die("arguments");
    c.first = ntohl(first.s_addr);
    c.prefix = atoi(argv[4]);
    c.isolated = atoi(argv[6]);
    c.host = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (c.host < 0)
        floor_die("netlink socket");
    return floor_emit(n, bridged_one, &c);
}
