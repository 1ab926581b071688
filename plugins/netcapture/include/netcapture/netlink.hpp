// Framing of netlink byte streams: splits a buffer into messages (struct nlmsghdr, netlink(7))
// and a payload into attributes (struct rtattr / struct nlattr, rtnetlink(7)). Knows nothing about
// what the messages mean; every length is checked against the buffer it claims to describe.
#pragma once

#include <activate/result.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace activate::netcapture {

// One message as found in a buffer; `payload` points into that buffer (after the header).
struct NetlinkMessage {
    uint16_t type = 0;
    uint16_t flags = 0;
    uint32_t seq = 0;
    uint32_t pid = 0;
    size_t offset = 0;  // of the header in the buffer, for error messages
    std::string_view payload;
};

// Splits concatenated netlink messages (as received from a socket, or as recorded). Each header's
// nlmsg_len must cover at least the header and fit in the buffer; messages are NLMSG_ALIGNed, the
// last one may end without padding.
Result<std::vector<NetlinkMessage>> split_messages(std::string_view bytes);

// One attribute; `type` has NLA_F_NESTED and NLA_F_NET_BYTEORDER masked off (the kernel sets
// NLA_F_NESTED on some nested attributes and not on others).
struct NetlinkAttribute {
    uint16_t type = 0;
    std::string_view data;
};

// Splits a run of attributes (each RTA_ALIGNed). `where` names the run for error messages
// ("RTM_NEWLINK at offset 1400", "IFLA_LINKINFO").
Result<std::vector<NetlinkAttribute>> split_attributes(std::string_view bytes,
                                                       const std::string& where);

// Fixed-size fields. Attribute payloads are in host byte order unless the attribute is documented
// as big-endian (e.g. IFLA_VLAN_PROTOCOL, __be16 in linux/if_link.h).
Result<uint8_t> attribute_u8(const NetlinkAttribute& a, const char* name);
Result<uint16_t> attribute_u16(const NetlinkAttribute& a, const char* name);
Result<uint16_t> attribute_be16(const NetlinkAttribute& a, const char* name);
Result<uint32_t> attribute_u32(const NetlinkAttribute& a, const char* name);
// A NUL-terminated string attribute (IFLA_IFNAME, IFLA_INFO_KIND); the terminator is optional.
std::string attribute_string(const NetlinkAttribute& a);
// Raw bytes (addresses).
std::vector<uint8_t> attribute_bytes(const NetlinkAttribute& a);

// Copies a fixed-size C struct from the start of `bytes` without alignment assumptions.
template <class T>
Result<T> read_struct(std::string_view bytes, const char* name) {
    T value{};
    if (bytes.size() < sizeof(T)) {
        return Error(ErrorKind::input, std::string(name) + " needs " + std::to_string(sizeof(T)) +
                                           " bytes, message has " + std::to_string(bytes.size()));
    }
    static_assert(std::is_trivially_copyable_v<T>);
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
}

}  // namespace activate::netcapture
