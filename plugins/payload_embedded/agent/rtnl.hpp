// The agent's own rtnetlink client (rtnetlink(7), netlink(7)): builds requests with nested
// attributes, sends them one at a time with NLM_F_ACK and reads the kernel's answer, and dumps
// links and addresses. Small on purpose: the agent is static and shares nothing with the engine's
// netcapture plugin, which decodes far more than the agent needs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace activate::agent {

// One request being built: an nlmsghdr, the fixed header (ifinfomsg, ifaddrmsg, rtmsg) and
// attributes. Every attribute is RTA_ALIGNed; nested ones are closed with end_nested().
class RtnlRequest {
  public:
    RtnlRequest(uint16_t type, uint16_t flags, const void* header, size_t header_size);

    void put(uint16_t type, const void* data, size_t size);
    void put_u8(uint16_t type, uint8_t v) { put(type, &v, 1); }
    void put_u16(uint16_t type, uint16_t v) { put(type, &v, 2); }
    void put_u32(uint16_t type, uint32_t v) { put(type, &v, 4); }
    void put_string(uint16_t type, std::string_view s);  // with its NUL
    // Returns the offset to pass to end_nested().
    size_t begin_nested(uint16_t type);
    void end_nested(size_t offset);

    // The finished message (nlmsg_len set); seq is filled in by the socket.
    std::string& bytes();

  private:
    std::string buf_;
};

// One parameter of a bond or VLAN as the kernel reports it (IFLA_INFO_DATA): a number, or text
// for a MAC address or a VLAN protocol.
struct LinkDetail {
    std::string name;  // "mode", "miimon", "ad_actor_system", "id", "protocol", ...
    bool is_number = true;
    int64_t number = 0;
    std::string text;
};

// A link as the kernel reports it (RTM_NEWLINK in a dump).
struct LiveLink {
    int index = 0;
    std::string name;
    std::string kind;      // IFLA_INFO_KIND ("bond", "vlan", "veth"), empty for plain devices
    std::string mac;       // IFLA_ADDRESS, lower-case colon-separated
    std::string perm_mac;  // IFLA_PERM_ADDRESS, empty when the kernel gives none
    int master = 0;        // IFLA_MASTER
    int parent = 0;        // IFLA_LINK (a VLAN's parent)
    unsigned mtu = 0;
    bool up = false;                  // IFF_UP
    std::vector<LinkDetail> details;  // bonds and VLANs only
};

struct LiveAddress {
    int index = 0;
    std::string cidr;  // "192.0.2.1/24"
};

class RtnlSocket {
  public:
    RtnlSocket();
    ~RtnlSocket();
    RtnlSocket(const RtnlSocket&) = delete;
    RtnlSocket& operator=(const RtnlSocket&) = delete;

    // Empty when the socket is open, else why not.
    const std::string& open_error() const { return open_error_; }

    // Sends one request with NLM_F_ACK and waits for its acknowledgement; empty on success,
    // else the kernel's error (strerror plus the extended ack message when there is one).
    std::string execute(RtnlRequest& request);

    // Dumps (NLM_F_DUMP); empty string on success.
    std::string links(std::vector<LiveLink>* out);
    std::string addresses(std::vector<LiveAddress>* out);

  private:
    // Sends and collects the reply messages (without NLMSG_DONE) of one request.
    std::string transact(std::string& message, std::vector<std::string>* replies);

    int fd_ = -1;
    uint32_t seq_ = 0;
    std::string open_error_;
};

std::string format_mac(std::string_view bytes);

}  // namespace activate::agent
