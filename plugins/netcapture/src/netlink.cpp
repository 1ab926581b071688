// Netlink framing (netlink(7), rtnetlink(7)): message and attribute splitting with bounds checks.
#include <arpa/inet.h>
#include <linux/netlink.h>

#include <netcapture/netlink.hpp>

namespace activate::netcapture {
namespace {

constexpr size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

}  // namespace

Result<std::vector<NetlinkMessage>> split_messages(std::string_view bytes) {
    std::vector<NetlinkMessage> out;
    size_t offset = 0;
    while (offset < bytes.size()) {
        const std::string_view rest = bytes.substr(offset);
        if (rest.size() < sizeof(nlmsghdr)) {
            return Error(ErrorKind::input, "netlink message at offset " + std::to_string(offset) +
                                               ": truncated header (" +
                                               std::to_string(rest.size()) + " bytes)");
        }
        nlmsghdr header;
        std::memcpy(&header, rest.data(), sizeof header);
        if (header.nlmsg_len < sizeof(nlmsghdr) || header.nlmsg_len > rest.size()) {
            return Error(ErrorKind::input, "netlink message at offset " + std::to_string(offset) +
                                               ": nlmsg_len " + std::to_string(header.nlmsg_len) +
                                               " outside 16.." + std::to_string(rest.size()));
        }
        NetlinkMessage m;
        m.type = header.nlmsg_type;
        m.flags = header.nlmsg_flags;
        m.seq = header.nlmsg_seq;
        m.pid = header.nlmsg_pid;
        m.offset = offset;
        m.payload = rest.substr(sizeof(nlmsghdr), header.nlmsg_len - sizeof(nlmsghdr));
        out.push_back(m);
        offset += align4(header.nlmsg_len);
    }
    return out;
}

Result<std::vector<NetlinkAttribute>> split_attributes(std::string_view bytes,
                                                       const std::string& where) {
    std::vector<NetlinkAttribute> out;
    size_t offset = 0;
    while (offset < bytes.size()) {
        const std::string_view rest = bytes.substr(offset);
        if (rest.size() < sizeof(nlattr)) {
            return Error(ErrorKind::input, where + ": truncated attribute header at offset " +
                                               std::to_string(offset));
        }
        nlattr header;
        std::memcpy(&header, rest.data(), sizeof header);
        if (header.nla_len < sizeof(nlattr) || header.nla_len > rest.size()) {
            return Error(ErrorKind::input, where + ": attribute type " +
                                               std::to_string(header.nla_type & NLA_TYPE_MASK) +
                                               " at offset " + std::to_string(offset) +
                                               " has length " + std::to_string(header.nla_len) +
                                               ", " + std::to_string(rest.size()) + " bytes left");
        }
        out.push_back(
            NetlinkAttribute{static_cast<uint16_t>(header.nla_type & NLA_TYPE_MASK),
                             rest.substr(sizeof(nlattr), header.nla_len - sizeof(nlattr))});
        offset += align4(header.nla_len);
    }
    return out;
}

namespace {

template <class T>
Result<T> fixed(const NetlinkAttribute& a, const char* name) {
    if (a.data.size() != sizeof(T)) {
        return Error(ErrorKind::input, std::string(name) + " has " + std::to_string(a.data.size()) +
                                           " bytes, expected " + std::to_string(sizeof(T)));
    }
    T v;
    std::memcpy(&v, a.data.data(), sizeof v);
    return v;
}

}  // namespace

Result<uint8_t> attribute_u8(const NetlinkAttribute& a, const char* name) {
    return fixed<uint8_t>(a, name);
}
Result<uint16_t> attribute_u16(const NetlinkAttribute& a, const char* name) {
    return fixed<uint16_t>(a, name);
}
Result<uint16_t> attribute_be16(const NetlinkAttribute& a, const char* name) {
    ACTIVATE_ASSIGN(uint16_t v, fixed<uint16_t>(a, name));
    return ntohs(v);
}
Result<uint32_t> attribute_u32(const NetlinkAttribute& a, const char* name) {
    return fixed<uint32_t>(a, name);
}

std::string attribute_string(const NetlinkAttribute& a) {
    std::string_view s = a.data;
    if (const size_t nul = s.find('\0'); nul != std::string_view::npos) s = s.substr(0, nul);
    return std::string(s);
}

std::vector<uint8_t> attribute_bytes(const NetlinkAttribute& a) {
    return std::vector<uint8_t>(a.data.begin(), a.data.end());
}

}  // namespace activate::netcapture
