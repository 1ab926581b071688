// See rtnl.hpp. Message layout: netlink(7) (struct nlmsghdr, NLMSG_ERROR with struct nlmsgerr and
// the extended-ack TLVs of linux/netlink.h) and rtnetlink(7) (ifinfomsg, ifaddrmsg, rtattr).
#include "rtnl.hpp"

#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace activate::agent {
namespace {

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

template <class T>
bool read_at(std::string_view bytes, size_t offset, T* out) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return false;
    std::memcpy(out, bytes.data() + offset, sizeof(T));
    return true;
}

// Calls `each(type, payload)` for every attribute of a run; false when a length is bad.
template <class F>
bool for_each_attribute(std::string_view run, F each) {
    size_t offset = 0;
    while (run.size() - offset >= sizeof(rtattr)) {
        rtattr a;
        std::memcpy(&a, run.data() + offset, sizeof a);
        if (a.rta_len < sizeof a || a.rta_len > run.size() - offset) return false;
        each(static_cast<uint16_t>(a.rta_type & NLA_TYPE_MASK),
             run.substr(offset + sizeof a, a.rta_len - sizeof a));
        offset += align4(a.rta_len);
        if (offset > run.size()) break;
    }
    return true;
}

std::string c_string(std::string_view data) {
    const size_t nul = data.find('\0');
    return std::string(nul == std::string_view::npos ? data : data.substr(0, nul));
}

}  // namespace

std::string format_mac(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        if (!out.empty()) out += ':';
        out += digits[static_cast<unsigned char>(c) >> 4];
        out += digits[static_cast<unsigned char>(c) & 15];
    }
    return out;
}

RtnlRequest::RtnlRequest(uint16_t type, uint16_t flags, const void* header, size_t header_size) {
    nlmsghdr h{};
    h.nlmsg_type = type;
    h.nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
    buf_.assign(reinterpret_cast<const char*>(&h), sizeof h);
    buf_.append(reinterpret_cast<const char*>(header), header_size);
    buf_.resize(align4(buf_.size()), '\0');
}

void RtnlRequest::put(uint16_t type, const void* data, size_t size) {
    rtattr a{};
    a.rta_len = static_cast<unsigned short>(sizeof a + size);
    a.rta_type = type;
    buf_.append(reinterpret_cast<const char*>(&a), sizeof a);
    buf_.append(reinterpret_cast<const char*>(data), size);
    buf_.resize(align4(buf_.size()), '\0');
}

void RtnlRequest::put_string(uint16_t type, std::string_view s) {
    std::string with_nul(s);
    with_nul += '\0';
    put(type, with_nul.data(), with_nul.size());
}

size_t RtnlRequest::begin_nested(uint16_t type) {
    const size_t offset = buf_.size();
    put(static_cast<uint16_t>(type | NLA_F_NESTED), nullptr, 0);
    return offset;
}

void RtnlRequest::end_nested(size_t offset) {
    const auto len = static_cast<unsigned short>(buf_.size() - offset);
    std::memcpy(&buf_[offset + offsetof(rtattr, rta_len)], &len, sizeof len);
}

std::string& RtnlRequest::bytes() {
    const auto len = static_cast<uint32_t>(buf_.size());
    std::memcpy(&buf_[offsetof(nlmsghdr, nlmsg_len)], &len, sizeof len);
    return buf_;
}

RtnlSocket::RtnlSocket() {
    fd_ = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd_ < 0) {
        open_error_ = std::string("cannot open a NETLINK_ROUTE socket: ") + std::strerror(errno);
        return;
    }
    // Extended acks carry the kernel's reason ("Unknown device type"); capped acks do not echo
    // the request back. Both are optional: an old kernel still answers with the errno.
    const int one = 1;
    ::setsockopt(fd_, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    ::setsockopt(fd_, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
}

RtnlSocket::~RtnlSocket() {
    if (fd_ >= 0) ::close(fd_);
}

std::string RtnlSocket::transact(std::string& message, std::vector<std::string>* replies) {
    if (fd_ < 0) return open_error_;
    const uint32_t seq = ++seq_;
    std::memcpy(&message[offsetof(nlmsghdr, nlmsg_seq)], &seq, sizeof seq);
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd_, message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                 sizeof kernel) < 0)
        return std::string("sending to the kernel: ") + std::strerror(errno);
    std::string buf(64 * 1024, '\0');
    for (;;) {
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_TRUNC);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::string("receiving from the kernel: ") + std::strerror(errno);
        if (static_cast<size_t>(n) > buf.size())
            return "a kernel reply of " + std::to_string(n) + " bytes does not fit the buffer";
        const std::string_view datagram(buf.data(), static_cast<size_t>(n));
        size_t offset = 0;
        while (datagram.size() - offset >= sizeof(nlmsghdr)) {
            nlmsghdr h;
            read_at(datagram, offset, &h);
            if (h.nlmsg_len < sizeof h || h.nlmsg_len > datagram.size() - offset)
                return "malformed kernel reply (nlmsg_len " + std::to_string(h.nlmsg_len) + ")";
            const std::string_view payload =
                datagram.substr(offset + sizeof h, h.nlmsg_len - sizeof h);
            offset += align4(h.nlmsg_len);
            if (h.nlmsg_seq != seq) continue;  // a late answer to an earlier request
            if (h.nlmsg_type == NLMSG_DONE) return {};
            if (h.nlmsg_type == NLMSG_ERROR) {
                nlmsgerr e;
                if (!read_at(payload, 0, &e)) return "truncated NLMSG_ERROR from the kernel";
                if (e.error == 0) return {};
                std::string reason = std::strerror(-e.error);
                if (h.nlmsg_flags & NLM_F_ACK_TLVS) {
                    // With NETLINK_CAP_ACK the TLVs follow the header copy directly.
                    const size_t tlvs = align4(sizeof(nlmsgerr));
                    if (tlvs <= payload.size()) {
                        for_each_attribute(payload.substr(tlvs),
                                           [&](uint16_t type, std::string_view data) {
                                               if (type == NLMSGERR_ATTR_MSG)
                                                   reason += " (" + c_string(data) + ")";
                                           });
                    }
                }
                return reason;
            }
            if (replies) replies->emplace_back(payload);
        }
    }
}

std::string RtnlSocket::execute(RtnlRequest& request) {
    std::string& bytes = request.bytes();
    uint16_t flags;
    std::memcpy(&flags, &bytes[offsetof(nlmsghdr, nlmsg_flags)], sizeof flags);
    flags |= NLM_F_ACK;
    std::memcpy(&bytes[offsetof(nlmsghdr, nlmsg_flags)], &flags, sizeof flags);
    return transact(bytes, nullptr);
}

std::string RtnlSocket::links(std::vector<LiveLink>* out) {
    ifinfomsg header{};
    header.ifi_family = AF_UNSPEC;
    RtnlRequest request(RTM_GETLINK, NLM_F_DUMP, &header, sizeof header);
    std::vector<std::string> replies;
    if (std::string e = transact(request.bytes(), &replies); !e.empty()) return e;
    out->clear();
    for (const std::string& payload : replies) {
        ifinfomsg ifi;
        if (!read_at(std::string_view(payload), 0, &ifi)) continue;
        LiveLink link;
        link.index = ifi.ifi_index;
        link.up = (ifi.ifi_flags & IFF_UP) != 0;
        for_each_attribute(std::string_view(payload).substr(align4(sizeof ifi)),
                           [&](uint16_t type, std::string_view data) {
                               uint32_t u32 = 0;
                               switch (type) {
                                   case IFLA_IFNAME:
                                       link.name = c_string(data);
                                       break;
                                   case IFLA_ADDRESS:
                                       link.mac = format_mac(data);
                                       break;
                                   case IFLA_PERM_ADDRESS:
                                       link.perm_mac = format_mac(data);
                                       break;
                                   case IFLA_MTU:
                                       if (read_at(data, 0, &u32)) link.mtu = u32;
                                       break;
                                   case IFLA_MASTER:
                                       if (read_at(data, 0, &u32))
                                           link.master = static_cast<int>(u32);
                                       break;
                                   case IFLA_LINK:
                                       if (read_at(data, 0, &u32))
                                           link.parent = static_cast<int>(u32);
                                       break;
                                   case IFLA_LINKINFO:
                                       for_each_attribute(data,
                                                          [&](uint16_t t, std::string_view d) {
                                                              if (t == IFLA_INFO_KIND)
                                                                  link.kind = c_string(d);
                                                          });
                                       break;
                                   default:
                                       break;
                               }
                           });
        out->push_back(std::move(link));
    }
    return {};
}

std::string RtnlSocket::addresses(std::vector<LiveAddress>* out) {
    ifaddrmsg header{};
    header.ifa_family = AF_UNSPEC;
    RtnlRequest request(RTM_GETADDR, NLM_F_DUMP, &header, sizeof header);
    std::vector<std::string> replies;
    if (std::string e = transact(request.bytes(), &replies); !e.empty()) return e;
    out->clear();
    for (const std::string& payload : replies) {
        ifaddrmsg ifa;
        if (!read_at(std::string_view(payload), 0, &ifa)) continue;
        std::string local, address;
        for_each_attribute(std::string_view(payload).substr(align4(sizeof ifa)),
                           [&](uint16_t type, std::string_view data) {
                               if (type == IFA_LOCAL) local = std::string(data);
                               if (type == IFA_ADDRESS) address = std::string(data);
                           });
        // IFA_LOCAL is the interface's own address where it differs from IFA_ADDRESS (a peer).
        const std::string& own = local.empty() ? address : local;
        char text[INET6_ADDRSTRLEN] = {};
        if ((ifa.ifa_family == AF_INET && own.size() == 4) ||
            (ifa.ifa_family == AF_INET6 && own.size() == 16)) {
            ::inet_ntop(ifa.ifa_family, own.data(), text, sizeof text);
            out->push_back(
                LiveAddress{static_cast<int>(ifa.ifa_index),
                            std::string(text) + "/" + std::to_string(ifa.ifa_prefixlen)});
        }
    }
    return {};
}

}  // namespace activate::agent
