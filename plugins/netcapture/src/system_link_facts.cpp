// Per-link facts that rtnetlink does not carry: the driver (sysfs "device/driver" symlink, or
// ETHTOOL_GDRVINFO), the permanent MAC (ETHTOOL_GPERMADDR) and the IPv6 privacy sysctl.
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <activate/fd.hpp>
#include <charconv>
#include <cstring>
#include <netcapture/system_link_facts.hpp>

namespace activate::netcapture {
namespace {

// Link names come from the dump; one that could climb out of /sys/class/net (a recorded dump can
// hold anything) or not fit an ifreq is never used in a path or an ioctl. The kernel's own rule
// (dev_valid_name) forbids '/', ':' and whitespace.
bool usable_name(const std::string& name) {
    return !name.empty() && name.size() < IFNAMSIZ && name != "." && name != ".." &&
           name.find_first_of("/: \t\n") == std::string::npos;
}

// SIOCETHTOOL on an AF_INET datagram socket, which reaches any device of the namespace.
bool ethtool(const std::string& name, void* command) {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    ifreq request{};
    std::memcpy(request.ifr_name, name.data(), name.size());
    request.ifr_data = static_cast<char*>(command);
    return ::ioctl(fd.get(), SIOCETHTOOL, &request) == 0;
}

}  // namespace

std::vector<uint8_t> SystemLinkFacts::permanent_address(const std::string& link) const {
    if (!use_ethtool_ || !usable_name(link)) return {};
    // struct ethtool_perm_addr ends in a flexible array of `size` bytes (MAX_ADDR_LEN is 32).
    constexpr uint32_t kMaxAddressLength = 32;
    alignas(ethtool_perm_addr) uint8_t buffer[sizeof(ethtool_perm_addr) + kMaxAddressLength] = {};
    ethtool_perm_addr header{};
    header.cmd = ETHTOOL_GPERMADDR;
    header.size = kMaxAddressLength;
    std::memcpy(buffer, &header, sizeof header);
    if (!ethtool(link, buffer)) return {};
    std::memcpy(&header, buffer, sizeof header);
    if (header.size > kMaxAddressLength) return {};
    const uint8_t* data = buffer + sizeof(ethtool_perm_addr);
    return std::vector<uint8_t>(data, data + header.size);
}

std::string SystemLinkFacts::driver(const std::string& link) const {
    if (!usable_name(link)) return {};
    // sysfs-class-net: "device" links to the parent device, whose "driver" links to
    // /sys/bus/<bus>/drivers/<name>. Virtual links have no device.
    if (auto target = sysroot_.read_link("/sys/class/net/" + link + "/device/driver");
        target.ok()) {
        const std::string& t = *target;
        return t.substr(t.find_last_of('/') + 1);
    }
    if (!use_ethtool_) return {};
    ethtool_drvinfo info{};
    info.cmd = ETHTOOL_GDRVINFO;
    if (!ethtool(link, &info)) return {};
    return std::string(info.driver, strnlen(info.driver, sizeof info.driver));
}

Result<int> SystemLinkFacts::ipv6_use_tempaddr(const std::string& link) const {
    if (!usable_name(link)) return Error(ErrorKind::input, "unusable link name");
    const std::string path = "/proc/sys/net/ipv6/conf/" + link + "/use_tempaddr";
    ACTIVATE_ASSIGN(const std::string text, sysroot_.read_file(path, 64));
    const char* begin = text.data();
    const char* end = begin + text.size();
    while (end != begin && (end[-1] == '\n' || end[-1] == ' ')) --end;
    int value = 0;
    const auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || ptr != end || begin == end) {
        return Error(ErrorKind::input, path + ": not an integer: \"" + text + "\"");
    }
    return value;
}

}  // namespace activate::netcapture
