// How the reference agent makes itself known after a takeover: one HTTP/1.0 POST to the
// TakeoverInit's bmaas_endpoint with its machine id and public key, and a TCP port on which it
// answers every connection with the same identity. The protocol is in agent/README.md.
#pragma once

#include <cstdint>
#include <string>

namespace activate::agent {

struct AgentIdentity {
    std::string machine_id;
    std::string public_key_hex;
    uint16_t port = 0;  // where the agent answers
};

// An endpoint the agent can reach: http://ADDRESS:PORT[/PATH] or ADDRESS:PORT, ADDRESS an IPv4
// literal or a bracketed IPv6 literal.
struct AnnounceEndpoint {
    std::string host;  // without brackets
    uint16_t port = 0;
    std::string path = "/";
};

// Parses bmaas_endpoint; on failure returns false and says why (https, host names, no port).
bool parse_announce_endpoint(const std::string& text, AnnounceEndpoint* out, std::string* reason);

// The request body: {"machine_id":"…","public_key":"<hex>","port":N}.
std::string announce_body(const AgentIdentity& identity);

struct AnnounceTiming {
    int attempts = 5;
    int first_backoff_ms = 1000;  // doubled after each failed attempt
    int attempt_timeout_ms = 5000;
};

// POSTs the identity until an attempt gets a 2xx status line; false with the last attempt's
// reason otherwise.
bool announce(const AnnounceEndpoint& endpoint, const AgentIdentity& identity,
              const AnnounceTiming& timing, std::string* reason);

// The line written to every connection on the agent's port (with a trailing newline).
std::string identity_line(const AgentIdentity& identity);

// Listens on `port` (0: any; IPv6 and IPv4), returns the socket and the bound port, or -1 and why.
int listen_for_operators(uint16_t port, uint16_t* bound, std::string* reason);

// Answers every connection on `listener` with identity_line(); never returns.
[[noreturn]] void serve_identity(int listener, const AgentIdentity& identity);

}  // namespace activate::agent
