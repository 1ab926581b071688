// resolv.conf(5) parsing. The format: one option per line, keyword and value separated by blanks;
// lines starting with ';' or '#' are comments.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <netcapture/resolv_conf.hpp>

namespace activate::netcapture {

bool is_ip_address(const std::string& text) {
    in6_addr buffer;
    return inet_pton(AF_INET, text.c_str(), &buffer) == 1 ||
           inet_pton(AF_INET6, text.c_str(), &buffer) == 1;
}

Nameservers parse_resolv_conf(std::string_view text, const std::string& path) {
    Nameservers out;
    size_t line_number = 0;
    while (!text.empty()) {
        const size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
        ++line_number;
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;

        auto next_word = [&line]() {
            const size_t start = line.find_first_not_of(" \t\r");
            if (start == std::string_view::npos) {
                line = {};
                return std::string_view();
            }
            line = line.substr(start);
            const size_t stop = line.find_first_of(" \t\r");
            std::string_view word = line.substr(0, stop);
            line = stop == std::string_view::npos ? std::string_view() : line.substr(stop);
            return word;
        };
        if (next_word() != "nameserver") continue;
        const std::string address(next_word());
        const std::string where = path + " line " + std::to_string(line_number);
        if (address.empty()) {
            out.warnings.push_back("nameservers: " + where + ": nameserver without an address");
        } else if (address.find('%') != std::string::npos) {
            // A zone index names an interface of this system, meaningless to the agent.
            out.warnings.push_back("nameservers: " + where + ": skipped " + address +
                                   ", a scoped address");
        } else if (!is_ip_address(address)) {
            out.warnings.push_back("nameservers: " + where + ": skipped " + address +
                                   ", not an IP address");
        } else {
            out.addresses.push_back(address);
        }
    }
    return out;
}

}  // namespace activate::netcapture
