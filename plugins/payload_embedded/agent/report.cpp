// Decodes the AgentInit and renders it as JSON: identity, the key pair checked with libsodium,
// the network configuration captured by the takeover, and the command line the agent booted
// with (so tests see the console= parameters carried over).
#include "report.hpp"

#include <sodium.h>

#include "json.hpp"
#include "takeover.pb.h"

namespace activate::agent {
namespace {

namespace wire = activate::wire;

std::string hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (const char c : bytes) {
        out += digits[static_cast<unsigned char>(c) >> 4];
        out += digits[static_cast<unsigned char>(c) & 15];
    }
    return out;
}

void write_strings(JsonWriter& json, const google::protobuf::RepeatedPtrField<std::string>& list) {
    json.begin_array();
    for (const std::string& s : list) json.string(s);
    json.end_array();
}

void write_bond(JsonWriter& json, const wire::Bond& bond) {
    json.begin_object();
    json.key("member_interfaces");
    write_strings(json, bond.member_interface());
    json.key("min_links").number(bond.min_links());
    json.key("transmit_hash_policy")
        .string(wire::Bond::TransmitHashPolicy_Name(bond.transmit_hash_policy()));
    json.key("carrier_monitor");
    if (bond.has_carrier_monitor()) {
        const wire::CarrierMonitor& m = bond.carrier_monitor();
        json.begin_object()
            .key("polling_interval_ms")
            .number(m.polling_interval_ms())
            .key("down_delay_ms")
            .number(m.down_delay_ms())
            .key("up_delay_ms")
            .number(m.up_delay_ms())
            .key("force_polling")
            .boolean(m.force_polling())
            .end_object();
    } else {
        json.null();
    }
    json.key("mode");
    switch (bond.mode_case()) {
        case wire::Bond::kLacp: {
            const wire::Bond::LACP& lacp = bond.lacp();
            json.string("lacp");
            json.key("lacp")
                .begin_object()
                .key("rate")
                .string(wire::Bond::LACP::Rate_Name(lacp.rate()))
                .key("selection_logic")
                .string(wire::Bond::LACP::SelectionLogic_Name(lacp.selection_logic()))
                .key("actor_system_priority")
                .number(lacp.actor_system_priority())
                .key("user_port_key")
                .number(lacp.user_port_key())
                .key("actor_system_mac")
                .string(lacp.actor_system_mac())
                .end_object();
            break;
        }
        case wire::Bond::kActiveBackup:
            json.string("active_backup");
            break;
        case wire::Bond::MODE_NOT_SET:
            json.string("none");
            break;
    }
    json.end_object();
}

void write_interface(JsonWriter& json, const wire::Interface& iface) {
    json.begin_object();
    json.key("name").string(iface.name());
    json.key("type");
    switch (iface.type_case()) {
        case wire::Interface::kDevice: {
            const wire::Device& d = iface.device();
            json.string("device");
            json.key("device")
                .begin_object()
                .key("hardware_address")
                .string(d.hardware_address())
                .key("driver")
                .string(d.driver())
                .key("index")
                .number(d.index())
                .end_object();
            break;
        }
        case wire::Interface::kBond:
            json.string("bond");
            json.key("bond");
            write_bond(json, iface.bond());
            break;
        case wire::Interface::kVlan: {
            const wire::VLAN& v = iface.vlan();
            json.string("vlan");
            json.key("vlan")
                .begin_object()
                .key("parent")
                .string(v.parent())
                .key("id")
                .number(v.id())
                .key("protocol")
                .string(wire::VLAN::Protocol_Name(v.protocol()))
                .end_object();
            break;
        }
        case wire::Interface::TYPE_NOT_SET:
            json.string("none");
            break;
    }
    json.key("addresses");
    write_strings(json, iface.address());
    json.key("routes").begin_array();
    for (const wire::Route& r : iface.route()) {
        json.begin_object()
            .key("destination")
            .string(r.destination())
            .key("gateway_ip")
            .string(r.gateway_ip())
            .key("source_ip")
            .string(r.source_ip())
            .key("metric")
            .number(r.metric())
            .end_object();
    }
    json.end_array();
    json.key("mtu").number(iface.mtu());
    json.key("ipv4_autoconfig").boolean(iface.has_ipv4_autoconfig());
    json.key("ipv6_autoconfig");
    if (iface.has_ipv6_autoconfig()) {
        json.begin_object()
            .key("privacy")
            .string(wire::IPv6Autoconfig::Privacy_Name(iface.ipv6_autoconfig().privacy()))
            .end_object();
    } else {
        json.null();
    }
    json.end_object();
}

void write_applied(JsonWriter& json, const AppliedNetwork& applied) {
    json.key("not_applied");
    json.begin_array();
    for (const std::string& s : applied.not_applied) json.string(s);
    json.end_array();
    json.key("links").begin_array();
    for (const LiveLink& l : applied.links) {
        std::string master;
        for (const LiveLink& m : applied.links)
            if (m.index == l.master && l.master != 0) master = m.name;
        json.begin_object()
            .key("name")
            .string(l.name)
            .key("kind")
            .string(l.kind)
            .key("mac")
            .string(l.mac)
            .key("mtu")
            .number(l.mtu)
            .key("up")
            .boolean(l.up)
            .key("master")
            .string(master);
        if (!l.details.empty()) {
            json.key("details").begin_object();
            for (const LinkDetail& d : l.details) {
                json.key(d.name);
                if (d.is_number)
                    json.number(d.number);
                else
                    json.string(d.text);
            }
            json.end_object();
        }
        json.key("addresses").begin_array();
        for (const LiveAddress& a : applied.addresses)
            if (a.index == l.index) json.string(a.cidr);
        json.end_array();
        json.end_object();
    }
    json.end_array();
}

}  // namespace

std::string error_line(std::string_view reason) {
    std::string line(kErrorPrefix);
    for (const char c : reason) line += (c == '\n' || c == '\r') ? ' ' : c;
    return line;
}

std::string agent_public_key_hex(std::string_view init_pb, std::string* reason) {
    wire::AgentInit init;
    if (!init.ParseFromArray(init_pb.data(), static_cast<int>(init_pb.size()))) {
        *reason = "/init.pb is not a valid AgentInit";
        return {};
    }
    const std::string& secret = init.private_key();
    if (secret.size() != crypto_sign_SECRETKEYBYTES || sodium_init() < 0) {
        *reason = "AgentInit.private_key is not a libsodium secret key";
        return {};
    }
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(secret.data()));
    sodium_memzero(sk, sizeof sk);
    return hex(std::string_view(reinterpret_cast<const char*>(pk), sizeof pk));
}

std::string report_line(std::string_view init_pb, std::string_view cmdline, bool* started,
                        const AppliedNetwork* applied) {
    *started = false;
    wire::AgentInit init;
    if (!init.ParseFromArray(init_pb.data(), static_cast<int>(init_pb.size())))
        return error_line("/init.pb is not a valid AgentInit (" + std::to_string(init_pb.size()) +
                          " bytes)");
    // libsodium's secret key form: the 32-byte seed followed by the 32-byte public key.
    const std::string& secret = init.private_key();
    if (secret.size() != crypto_sign_SECRETKEYBYTES)
        return error_line("AgentInit.private_key has " + std::to_string(secret.size()) +
                          " bytes, expected " + std::to_string(crypto_sign_SECRETKEYBYTES) +
                          " (seed || public key)");
    if (sodium_init() < 0) return error_line("libsodium failed to initialize");
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_seed_keypair(pk, sk, reinterpret_cast<const unsigned char*>(secret.data()));
    const std::string_view derived(reinterpret_cast<const char*>(pk), sizeof pk);
    const std::string_view stored = std::string_view(secret).substr(crypto_sign_SEEDBYTES);
    sodium_memzero(sk, sizeof sk);

    while (!cmdline.empty() && (cmdline.back() == '\n' || cmdline.back() == '\0'))
        cmdline.remove_suffix(1);

    JsonWriter json;
    json.begin_object();
    json.key("machine_id").string(init.takeover_init().machine_id());
    json.key("bmaas_endpoint").string(init.takeover_init().bmaas_endpoint());
    json.key("ca_certificate_bytes")
        .number(static_cast<int64_t>(init.takeover_init().ca_certificate().size()));
    json.key("public_key").string(hex(derived));
    json.key("public_key_matches").boolean(derived == stored);
    json.key("interfaces").begin_array();
    for (const wire::Interface& iface : init.network_config().interface())
        write_interface(json, iface);
    json.end_array();
    json.key("nameservers").begin_array();
    for (const wire::Nameserver& ns : init.network_config().nameserver()) json.string(ns.ip());
    json.end_array();
    json.key("cmdline").string(cmdline);
    if (applied) write_applied(json, *applied);
    json.end_object();
    *started = true;
    return std::string(kStartedPrefix) + json.text();
}

}  // namespace activate::agent
