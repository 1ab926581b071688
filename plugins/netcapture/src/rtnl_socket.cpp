// Live rtnetlink dumps (netlink(7), rtnetlink(7)). Replies arrive as datagrams of one or more
// messages, the last datagram ending with NLMSG_DONE.
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <netcapture/netlink.hpp>
#include <netcapture/rtnl_socket.hpp>

namespace activate::netcapture {
namespace {

constexpr int kReceiveTimeoutSeconds = 5;

const char* request_name(uint16_t type) {
    switch (type) {
        case RTM_GETLINK:
            return "RTM_GETLINK";
        case RTM_GETADDR:
            return "RTM_GETADDR";
        case RTM_GETROUTE:
            return "RTM_GETROUTE";
        default:
            return "rtnetlink request";
    }
}

}  // namespace

Result<RtnlSocket> RtnlSocket::open(size_t receive_buffer) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) return errno_error(ErrorKind::activation, "socket(AF_NETLINK, NETLINK_ROUTE)");
    // A dump that stalls must not hang the takeover.
    timeval timeout{kReceiveTimeoutSeconds, 0};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
        return errno_error(ErrorKind::activation, "setsockopt(SO_RCVTIMEO) on netlink socket");
    }
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
        return errno_error(ErrorKind::activation, "bind netlink socket");
    }
    socklen_t length = sizeof local;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &length) != 0) {
        return errno_error(ErrorKind::activation, "getsockname of netlink socket");
    }
    return RtnlSocket(std::move(fd), local.nl_pid, receive_buffer);
}

Result<std::string> RtnlSocket::dump(uint16_t request_type) {
    const std::string what = std::string(request_name(request_type)) + " dump";
    // The body is the request type's header struct (ifinfomsg, ifaddrmsg or rtmsg) all zero:
    // family AF_UNSPEC asks for every family. ifinfomsg is the largest of the three.
    struct {
        nlmsghdr header;
        ifinfomsg body;
    } request{};
    size_t body_size = sizeof(ifinfomsg);
    if (request_type == RTM_GETADDR) body_size = sizeof(ifaddrmsg);
    if (request_type == RTM_GETROUTE) body_size = sizeof(rtmsg);
    request.header.nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(body_size));
    request.header.nlmsg_type = request_type;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = ++seq_;
    request.header.nlmsg_pid = port_id_;

    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd_.get(), &request, request.header.nlmsg_len, 0,
                 reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) {
        return errno_error(ErrorKind::activation, "sending " + what);
    }

    std::string out;
    for (;;) {
        // One call per datagram, into a buffer large enough for any of them: the buffer's size
        // is also what makes the kernel send 32 KiB datagrams instead of page-sized ones (a
        // zero-length MSG_PEEK before each read doubled the calls and kept datagrams small:
        // 160 calls where `ip` makes 44 for 700 addresses and 501 routes). MSG_TRUNC makes
        // recv return the datagram's real size, so one that did not fit is an error, not a
        // silently cut reply.
        sockaddr_nl sender{};
        socklen_t sender_length = sizeof sender;
        ++receive_calls_;
        const ssize_t got = ::recvfrom(fd_.get(), buffer_.data(), buffer_.size(), MSG_TRUNC,
                                       reinterpret_cast<sockaddr*>(&sender), &sender_length);
        if (got < 0) {
            if (errno == EINTR) continue;
            return errno_error(ErrorKind::activation, "receiving " + what);
        }
        if (static_cast<size_t>(got) > buffer_.size())
            return Error(ErrorKind::activation,
                         "receiving " + what + ": a datagram of " + std::to_string(got) +
                             " bytes does not fit the " + std::to_string(buffer_.size()) +
                             "-byte receive buffer (it was dropped)");
        const std::string_view datagram(buffer_.data(), static_cast<size_t>(got));
        if (sender.nl_pid != 0) continue;  // only the kernel answers dumps
        ACTIVATE_ASSIGN(const auto messages, split_messages(datagram));
        for (const auto& m : messages) {
            // Replies to an earlier, abandoned request are not ours.
            if (m.seq != request.header.nlmsg_seq || m.pid != port_id_) continue;
            out.append(datagram, m.offset, sizeof(nlmsghdr) + m.payload.size());
            // Keep the concatenation NLMSG_ALIGNed, as a single datagram would be.
            out.resize(NLMSG_ALIGN(out.size()), '\0');
            if (m.type == NLMSG_DONE || m.type == NLMSG_ERROR) return out;
        }
    }
}

}  // namespace activate::netcapture
