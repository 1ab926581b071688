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

std::string format_mac_bytes(std::string_view bytes);

// The parameters the agent sets on bonds and VLANs, read back (linux/if_link.h).
std::vector<LinkDetail> link_details(const std::string& kind, std::string_view info_data) {
    std::vector<LinkDetail> out;
    auto number = [&](const char* name, std::string_view d) {
        uint8_t u8;
        uint16_t u16;
        uint32_t u32;
        int64_t v = 0;
        if (d.size() == 1 && read_at(d, 0, &u8)) v = u8;
        if (d.size() == 2 && read_at(d, 0, &u16)) v = u16;
        if (d.size() == 4 && read_at(d, 0, &u32)) v = u32;
        out.push_back(LinkDetail{name, true, v, {}});
    };
    static const std::pair<uint16_t, const char*> kBondNumbers[] = {
        {IFLA_BOND_MODE, "mode"},
        {IFLA_BOND_MIIMON, "miimon"},
        {IFLA_BOND_UPDELAY, "updelay"},
        {IFLA_BOND_DOWNDELAY, "downdelay"},
        {IFLA_BOND_USE_CARRIER, "use_carrier"},
        {IFLA_BOND_MIN_LINKS, "min_links"},
        {IFLA_BOND_XMIT_HASH_POLICY, "xmit_hash_policy"},
        {IFLA_BOND_AD_LACP_RATE, "ad_lacp_rate"},
        {IFLA_BOND_AD_SELECT, "ad_select"},
        {IFLA_BOND_AD_ACTOR_SYS_PRIO, "ad_actor_sys_prio"},
        {IFLA_BOND_AD_USER_PORT_KEY, "ad_user_port_key"},
    };
    for_each_attribute(info_data, [&](uint16_t type, std::string_view d) {
        if (kind == "bond") {
            for (const auto& [attr, name] : kBondNumbers)
                if (type == attr) number(name, d);
            if (type == IFLA_BOND_AD_ACTOR_SYSTEM)
                out.push_back(LinkDetail{"ad_actor_system", false, 0, format_mac_bytes(d)});
        } else if (kind == "vlan") {
            uint16_t be;
            if (type == IFLA_VLAN_ID) number("id", d);
            if (type == IFLA_VLAN_PROTOCOL && read_at(d, 0, &be)) {
                const uint16_t p = ntohs(be);
                out.push_back(LinkDetail{"protocol", false, 0,
                                         p == 0x88a8   ? "802.1ad"
                                         : p == 0x8100 ? "802.1Q"
                                                       : std::to_string(p)});
            }
        }
    });
    return out;
}

void read_link_attribute(uint16_t type, std::string_view data, LiveLink* link) {
    uint32_t u32 = 0;
    switch (type) {
        case IFLA_IFNAME:
            link->name = c_string(data);
            break;
        case IFLA_ADDRESS:
            link->mac = format_mac_bytes(data);
            break;
        case IFLA_PERM_ADDRESS:
            link->perm_mac = format_mac_bytes(data);
            break;
        case IFLA_MTU:
            if (read_at(data, 0, &u32)) link->mtu = u32;
            break;
        case IFLA_MASTER:
            if (read_at(data, 0, &u32)) link->master = static_cast<int>(u32);
            break;
        case IFLA_LINK:
            if (read_at(data, 0, &u32)) link->parent = static_cast<int>(u32);
            break;
        case IFLA_LINKINFO: {
            std::string_view info_data;
            for_each_attribute(data, [&](uint16_t t, std::string_view d) {
                if (t == IFLA_INFO_KIND) link->kind = c_string(d);
                if (t == IFLA_INFO_DATA) info_data = d;
            });
            link->details = link_details(link->kind, info_data);
            break;
        }
        default:
            break;
    }
}

std::string format_mac_bytes(std::string_view bytes) { return format_mac(bytes); }

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
        for_each_attribute(
            std::string_view(payload).substr(align4(sizeof ifi)),
            [&](uint16_t type, std::string_view data) { read_link_attribute(type, data, &link); });
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
