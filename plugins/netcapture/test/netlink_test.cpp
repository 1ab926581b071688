// Netlink framing and rtnetlink decoding on hand-built messages: well-formed ones decode to the
// right fields, every kind of malformed input is an error naming where it is.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <netcapture/netlink.hpp>
#include <netcapture/rtnl_dump.hpp>

namespace activate::netcapture {
namespace {

// Builds netlink messages the way the kernel lays them out (netlink(7)).
class MessageBuilder {
  public:
    MessageBuilder(uint16_t type, const void* header, size_t header_size) {
        nlmsghdr h{};
        h.nlmsg_type = type;
        h.nlmsg_flags = NLM_F_MULTI;
        append(&h, sizeof h);
        append(header, header_size);
        pad();
    }
    MessageBuilder& attr(uint16_t type, const void* data, size_t size) {
        nlattr a{static_cast<uint16_t>(sizeof(nlattr) + size), type};
        append(&a, sizeof a);
        append(data, size);
        pad();
        return *this;
    }
    MessageBuilder& attr_u32(uint16_t type, uint32_t v) { return attr(type, &v, sizeof v); }
    MessageBuilder& attr_str(uint16_t type, const std::string& s) {
        return attr(type, s.c_str(), s.size() + 1);
    }
    // A nested attribute whose payload is another builder's attributes.
    MessageBuilder& nested(uint16_t type, const std::string& inner) {
        return attr(type | NLA_F_NESTED, inner.data(), inner.size());
    }
    std::string bytes() const {
        std::string out = bytes_;
        const uint32_t len = static_cast<uint32_t>(out.size());
        std::memcpy(out.data(), &len, sizeof len);
        return out;
    }

  private:
    void append(const void* p, size_t n) {
        if (n != 0) bytes_.append(static_cast<const char*>(p), n);
    }
    void pad() { bytes_.resize(NLMSG_ALIGN(bytes_.size()), '\0'); }
    std::string bytes_;
};

// Attributes only (for nesting).
std::string attrs(std::initializer_list<std::pair<uint16_t, std::string>> list) {
    std::string out;
    for (const auto& [type, data] : list) {
        nlattr a{static_cast<uint16_t>(sizeof(nlattr) + data.size()), type};
        out.append(reinterpret_cast<const char*>(&a), sizeof a);
        out += data;
        out.resize(NLMSG_ALIGN(out.size()), '\0');
    }
    return out;
}

template <class T>
std::string raw(T v) {
    return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}

std::string done() {
    int32_t status = 0;
    return MessageBuilder(NLMSG_DONE, &status, sizeof status).bytes();
}

std::string vlan_link(int index, const std::string& name, uint16_t id, uint16_t protocol) {
    ifinfomsg info{};
    info.ifi_index = index;
    info.ifi_type = 1;
    MessageBuilder m(RTM_NEWLINK, &info, sizeof info);
    m.attr_str(IFLA_IFNAME, name).attr_u32(IFLA_MTU, 1500).attr_u32(IFLA_LINK, 2);
    const std::string data = attrs(
        {{IFLA_VLAN_ID, raw<uint16_t>(id)}, {IFLA_VLAN_PROTOCOL, raw<uint16_t>(htons(protocol))}});
    m.nested(IFLA_LINKINFO, attrs({{IFLA_INFO_KIND, std::string("vlan", 5)},
                                   {IFLA_INFO_DATA | NLA_F_NESTED, data}}));
    return m.bytes();
}

TEST(Netlink, SplitsMessagesAndAttributes) {
    const std::string bytes = vlan_link(7, "eth2.100", 100, 0x88a8) + done();
    auto messages = split_messages(bytes);
    ASSERT_TRUE(messages.ok()) << messages.error().message();
    ASSERT_EQ(messages->size(), 2u);
    EXPECT_EQ((*messages)[0].type, RTM_NEWLINK);
    EXPECT_EQ((*messages)[1].type, NLMSG_DONE);
    EXPECT_EQ((*messages)[1].offset, bytes.size() - 20);
    auto attributes = split_attributes((*messages)[0].payload.substr(sizeof(ifinfomsg)), "t");
    ASSERT_TRUE(attributes.ok());
    ASSERT_EQ(attributes->size(), 4u);
    EXPECT_EQ((*attributes)[3].type, IFLA_LINKINFO) << "NLA_F_NESTED is masked off";
}

TEST(Netlink, DecodesVlanWithBigEndianProtocol) {
    RtnlDump dump;
    auto s = decode_rtnl_dump(vlan_link(7, "eth2.100", 100, 0x88a8) + done(), dump);
    ASSERT_TRUE(s.ok()) << s.error().message();
    ASSERT_EQ(dump.links.size(), 1u);
    const LinkMessage& l = dump.links[0];
    EXPECT_EQ(l.index, 7);
    EXPECT_EQ(l.name, "eth2.100");
    EXPECT_EQ(l.kind, "vlan");
    ASSERT_TRUE(l.vlan && l.vlan->id && l.vlan->protocol);
    EXPECT_EQ(*l.vlan->id, 100);
    EXPECT_EQ(*l.vlan->protocol, 0x88a8);
    EXPECT_EQ(l.link, 2);
}

TEST(Netlink, DecodesAddressAndRoute) {
    ifaddrmsg a{};
    a.ifa_family = AF_INET;
    a.ifa_prefixlen = 24;
    a.ifa_index = 3;
    a.ifa_flags = IFA_F_PERMANENT;
    ifa_cacheinfo ci{1800, 3600, 0, 0};
    const std::string addr = MessageBuilder(RTM_NEWADDR, &a, sizeof a)
                                 .attr(IFA_ADDRESS, "\xc0\x00\x02\x0a", 4)
                                 .attr(IFA_LOCAL, "\xc0\x00\x02\x0b", 4)
                                 .attr_u32(IFA_FLAGS, IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE)
                                 .attr(IFA_CACHEINFO, &ci, sizeof ci)
                                 .bytes();
    rtmsg r{};
    r.rtm_family = AF_INET6;
    r.rtm_table = RT_TABLE_MAIN;
    r.rtm_protocol = RTPROT_STATIC;
    r.rtm_type = RTN_UNICAST;
    const std::string route =
        MessageBuilder(RTM_NEWROUTE, &r, sizeof r)
            .attr(RTA_GATEWAY, std::string(15, '\0').append("\x01").data(), 16)
            .attr_u32(RTA_OIF, 3)
            .attr_u32(RTA_PRIORITY, 1024)
            .attr_u32(RTA_TABLE, 1000)
            .bytes();
    RtnlDump dump;
    auto s = decode_rtnl_dump(addr + route + done(), dump);
    ASSERT_TRUE(s.ok()) << s.error().message();
    ASSERT_EQ(dump.addresses.size(), 1u);
    EXPECT_EQ(dump.addresses[0].flags, uint32_t{IFA_F_PERMANENT | IFA_F_NOPREFIXROUTE})
        << "IFA_FLAGS replaces the 8-bit ifa_flags";
    EXPECT_EQ(dump.addresses[0].local, (std::vector<uint8_t>{192, 0, 2, 11}));
    EXPECT_EQ(dump.addresses[0].address, (std::vector<uint8_t>{192, 0, 2, 10}));
    EXPECT_EQ(dump.addresses[0].valid_lifetime, 3600u);
    EXPECT_EQ(dump.addresses[0].preferred_lifetime, 1800u);
    ASSERT_EQ(dump.routes.size(), 1u);
    EXPECT_EQ(dump.routes[0].table, 1000u) << "RTA_TABLE overrides rtm_table";
    EXPECT_EQ(dump.routes[0].oif, 3u);
    EXPECT_EQ(dump.routes[0].priority, 1024u);
    EXPECT_EQ(dump.routes[0].gateway.size(), 16u);
    EXPECT_TRUE(dump.routes[0].dst.empty());
}

TEST(Netlink, IgnoresNonIpFamiliesAndOtherMessages) {
    rtmsg r{};
    r.rtm_family = 128;  // RTNL_FAMILY_IPMR
    ifaddrmsg a{};
    a.ifa_family = AF_PACKET;
    const std::string bytes = MessageBuilder(RTM_NEWROUTE, &r, sizeof r).bytes() +
                              MessageBuilder(RTM_NEWADDR, &a, sizeof a).bytes() +
                              MessageBuilder(NLMSG_NOOP, nullptr, 0).bytes() + done();
    RtnlDump dump;
    ASSERT_TRUE(decode_rtnl_dump(bytes, dump).ok());
    EXPECT_TRUE(dump.routes.empty());
    EXPECT_TRUE(dump.addresses.empty());
}

TEST(Netlink, DumpInterruptedFlagIsReported) {
    std::string bytes = vlan_link(7, "v", 1, 0x8100);
    const uint16_t flags = NLM_F_MULTI | NLM_F_DUMP_INTR;
    std::memcpy(bytes.data() + 6, &flags, sizeof flags);
    RtnlDump dump;
    ASSERT_TRUE(decode_rtnl_dump(bytes + done(), dump).ok());
    EXPECT_TRUE(dump.interrupted);
}

void expect_error(const std::string& bytes, const std::string& part) {
    RtnlDump dump;
    Status s = decode_rtnl_dump(bytes, dump);
    ASSERT_FALSE(s.ok()) << "expected an error containing \"" << part << "\"";
    EXPECT_EQ(s.error().kind(), ErrorKind::input);
    EXPECT_NE(s.error().message().find(part), std::string::npos) << s.error().message();
}

TEST(Netlink, RejectsMalformedFraming) {
    const std::string link = vlan_link(7, "v", 1, 0x8100);
    expect_error("", "empty rtnetlink dump");
    expect_error(link.substr(0, 10), "truncated header");
    expect_error(link.substr(0, link.size() - 4) + done(), "nlmsg_len");
    std::string short_len = done();
    const uint32_t eight = 8;
    std::memcpy(short_len.data(), &eight, sizeof eight);
    expect_error(short_len, "nlmsg_len 8");
    expect_error(link, "does not end with NLMSG_DONE");
}

TEST(Netlink, RejectsMalformedAttributes) {
    ifinfomsg info{};
    info.ifi_index = 3;
    // An attribute claiming more bytes than the message has.
    std::string bad =
        MessageBuilder(RTM_NEWLINK, &info, sizeof info).attr_str(IFLA_IFNAME, "x").bytes();
    const uint16_t huge = 200;
    std::memcpy(bad.data() + sizeof(nlmsghdr) + sizeof(ifinfomsg), &huge, sizeof huge);
    expect_error(bad + done(), "RTM_NEWLINK at offset 0: attributes: attribute type 3");
    // A fixed-size attribute of the wrong size.
    const uint16_t two = 2;
    expect_error(MessageBuilder(RTM_NEWLINK, &info, sizeof info)
                         .attr_str(IFLA_IFNAME, "x")
                         .attr(IFLA_MTU, &two, sizeof two)
                         .bytes() +
                     done(),
                 "IFLA_MTU has 2 bytes, expected 4");
    // A link without a name.
    expect_error(MessageBuilder(RTM_NEWLINK, &info, sizeof info).bytes() + done(),
                 "no IFLA_IFNAME");
    // A header shorter than its struct.
    expect_error(MessageBuilder(RTM_NEWLINK, &info, 4).bytes() + done(), "ifinfomsg needs 16");
    // An IPv4 address attribute of IPv6 size.
    ifaddrmsg a{};
    a.ifa_family = AF_INET;
    a.ifa_prefixlen = 24;
    expect_error(MessageBuilder(RTM_NEWADDR, &a, sizeof a)
                         .attr(IFA_LOCAL, std::string(16, 'x').data(), 16)
                         .bytes() +
                     done(),
                 "IFA_LOCAL has 16 bytes, expected 4 for IPv4");
    // A prefix longer than the address.
    a.ifa_prefixlen = 33;
    expect_error(
        MessageBuilder(RTM_NEWADDR, &a, sizeof a).attr(IFA_LOCAL, "abcd", 4).bytes() + done(),
        "prefix length 33");
    // Truncated IFA_CACHEINFO.
    a.ifa_prefixlen = 24;
    expect_error(MessageBuilder(RTM_NEWADDR, &a, sizeof a)
                         .attr(IFA_LOCAL, "abcd", 4)
                         .attr(IFA_CACHEINFO, "12345678", 8)
                         .bytes() +
                     done(),
                 "IFA_CACHEINFO has 8 bytes");
}

TEST(Netlink, ErrorsFromTheKernelAreErrors) {
    struct {
        int32_t error;
        nlmsghdr request;
    } err{-EPERM, {}};
    expect_error(MessageBuilder(NLMSG_ERROR, &err, sizeof err).bytes(), std::strerror(EPERM));
    int32_t status = -EINTR;
    expect_error(MessageBuilder(NLMSG_DONE, &status, sizeof status).bytes(), std::strerror(EINTR));
    // An acknowledgement (error 0) is not an error.
    err.error = 0;
    RtnlDump dump;
    EXPECT_TRUE(
        decode_rtnl_dump(MessageBuilder(NLMSG_ERROR, &err, sizeof err).bytes() + done(), dump)
            .ok());
}

// A code that is not a negated errno is named as such. INT32_MIN was negated before, which is
// signed overflow (UBSan); these 20-byte messages are the seeds nlmsg-error-int32-min.nl and
// nlmsg-done-int32-min.nl in fuzz/corpus/netcapture_rtnl_fuzz.
TEST(Netlink, ErrorCodesThatAreNotErrnosAreRefusedAsSuch) {
    for (uint16_t type : {uint16_t(NLMSG_ERROR), uint16_t(NLMSG_DONE)}) {
        int32_t code = INT32_MIN;
        const std::string bytes = MessageBuilder(type, &code, sizeof code).bytes();
        ASSERT_EQ(bytes.size(), 20u);
        expect_error(bytes, "error code -2147483648 is not a negated errno");
        code = -4096;  // one beyond MAX_ERRNO
        expect_error(MessageBuilder(type, &code, sizeof code).bytes(),
                     "error code -4096 is not a negated errno");
        code = -4095;  // MAX_ERRNO itself is an errno, if an unnamed one
        expect_error(MessageBuilder(type, &code, sizeof code).bytes(), std::strerror(4095));
    }
    // NLMSG_ERROR carries no positive codes; NLMSG_DONE's positive status is not an error.
    int32_t code = EPERM;
    expect_error(MessageBuilder(NLMSG_ERROR, &code, sizeof code).bytes(),
                 "error code 1 is not a negated errno");
    RtnlDump dump;
    EXPECT_TRUE(
        decode_rtnl_dump(MessageBuilder(NLMSG_DONE, &code, sizeof code).bytes(), dump).ok());
}

}  // namespace
}  // namespace activate::netcapture
