// The wire protocols must stay compatible with the reference system's clients and agents: the same
// field numbers and types (issue 2's list). The tests and the reference agent are generated from
// the same .proto files, so only a table written down here notices a renumbered field.
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "management.pb.h"
#include "net.pb.h"
#include "takeover.pb.h"

namespace activate {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;

struct Field {
    const char* message;  // relative to activate.wire
    const char* name;
    int number;
    FieldDescriptor::Type type;
    bool repeated = false;
    const char* oneof = nullptr;
};

constexpr auto kString = FieldDescriptor::TYPE_STRING;
constexpr auto kBytes = FieldDescriptor::TYPE_BYTES;
constexpr auto kInt32 = FieldDescriptor::TYPE_INT32;
constexpr auto kBool = FieldDescriptor::TYPE_BOOL;
constexpr auto kMessage = FieldDescriptor::TYPE_MESSAGE;
constexpr auto kEnum = FieldDescriptor::TYPE_ENUM;

const std::vector<Field> kFields = {
    {"TakeoverInit", "machine_id", 1, kString},
    {"TakeoverInit", "bmaas_endpoint", 2, kString},
    {"TakeoverInit", "ca_certificate", 3, kBytes},
    {"TakeoverSuccess", "init_message", 1, kMessage},
    {"TakeoverSuccess", "key", 2, kBytes},
    {"TakeoverSuccess", "warning", 3, kString, true},
    {"TakeoverError", "message", 1, kString},
    {"TakeoverResponse", "success", 1, kMessage, false, "result"},
    {"TakeoverResponse", "error", 2, kMessage, false, "result"},
    {"AgentInit", "takeover_init", 1, kMessage},
    {"AgentInit", "private_key", 2, kBytes},
    {"AgentInit", "network_config", 3, kMessage},
    {"Net", "interface", 1, kMessage, true},
    {"Net", "nameserver", 3, kMessage, true},
    {"Nameserver", "ip", 1, kString},
    {"Interface", "name", 1, kString},
    {"Interface", "device", 3, kMessage, false, "type"},
    {"Interface", "bond", 4, kMessage, false, "type"},
    {"Interface", "vlan", 5, kMessage, false, "type"},
    {"Interface", "ipv4_autoconfig", 10, kMessage},
    {"Interface", "ipv6_autoconfig", 11, kMessage},
    {"Interface", "address", 12, kString, true},
    {"Interface", "mtu", 13, kInt32},
    {"Interface", "route", 14, kMessage, true},
    {"Device", "hardware_address", 1, kString},
    {"Device", "driver", 2, kString},
    {"Device", "index", 3, kInt32},
    {"Bond", "member_interface", 1, kString, true},
    {"Bond", "min_links", 2, kInt32},
    {"Bond", "carrier_monitor", 3, kMessage, false, "link_monitor"},
    {"Bond", "transmit_hash_policy", 4, kEnum},
    {"Bond", "lacp", 5, kMessage, false, "mode"},
    {"Bond", "active_backup", 6, kMessage, false, "mode"},
    {"CarrierMonitor", "polling_interval_ms", 1, kInt32},
    {"CarrierMonitor", "down_delay_ms", 2, kInt32},
    {"CarrierMonitor", "up_delay_ms", 3, kInt32},
    {"CarrierMonitor", "force_polling", 4, kBool},
    {"Bond.LACP", "rate", 1, kEnum},
    {"Bond.LACP", "selection_logic", 2, kEnum},
    {"Bond.LACP", "actor_system_priority", 3, kInt32},
    {"Bond.LACP", "user_port_key", 4, kInt32},
    {"Bond.LACP", "actor_system_mac", 5, kString},
    {"VLAN", "parent", 1, kString},
    {"VLAN", "id", 2, kInt32},
    {"VLAN", "protocol", 3, kEnum},
    {"IPv6Autoconfig", "privacy", 1, kEnum},
    {"Route", "destination", 1, kString},
    {"Route", "gateway_ip", 2, kString},
    {"Route", "source_ip", 3, kString},
    {"Route", "metric", 4, kInt32},
    {"UpdateNodeRequest", "bundle_url", 1, kString},
    {"UpdateNodeRequest", "activation_mode", 3, kEnum},
    // Not the reference system's (it has no field 4): activation modes by their declared name.
    {"UpdateNodeRequest", "activation_mode_name", 4, kString},
};

const Descriptor* message(const std::string& name) {
    // Referencing the generated types makes sure their descriptors are in the generated pool.
    (void)wire::TakeoverResponse::descriptor();
    (void)wire::AgentInit::descriptor();
    (void)wire::UpdateNodeRequest::descriptor();
    return DescriptorPool::generated_pool()->FindMessageTypeByName("activate.wire." + name);
}

TEST(WireCompat, FieldNumbersAndTypesMatchTheReferenceSystem) {
    for (const Field& f : kFields) {
        SCOPED_TRACE(std::string(f.message) + "." + f.name);
        const Descriptor* d = message(f.message);
        ASSERT_NE(d, nullptr);
        const FieldDescriptor* field = d->FindFieldByName(f.name);
        ASSERT_NE(field, nullptr);
        EXPECT_EQ(field->number(), f.number);
        EXPECT_EQ(field->type(), f.type);
        EXPECT_EQ(field->is_repeated(), f.repeated);
        const auto* oneof = field->real_containing_oneof();
        EXPECT_EQ(oneof ? oneof->name() : std::string(), f.oneof ? f.oneof : "");
    }
}

// Numbers the reference system leaves unused stay unused, so old peers never misread them.
TEST(WireCompat, UnusedNumbersStayFree) {
    EXPECT_EQ(message("Net")->FindFieldByNumber(2), nullptr);
    EXPECT_EQ(message("UpdateNodeRequest")->FindFieldByNumber(2), nullptr);
    EXPECT_EQ(message("UpdateNodeResponse")->field_count(), 0);
    EXPECT_EQ(message("Bond.ActiveBackup")->field_count(), 0);
    EXPECT_EQ(message("IPv4Autoconfig")->field_count(), 0);
}

TEST(WireCompat, EnumValuesMatchTheReferenceSystem) {
    const std::vector<std::pair<const EnumDescriptor*, std::vector<std::pair<const char*, int>>>>
        enums = {
            {wire::ActivationMode_descriptor(),
             {{"ACTIVATION_INVALID", 0},
              {"ACTIVATION_NONE", 1},
              {"ACTIVATION_REBOOT", 2},
              {"ACTIVATION_KEXEC", 3}}},
            {wire::Bond_TransmitHashPolicy_descriptor(),
             {{"LAYER2", 0},
              {"LAYER3_4", 1},
              {"LAYER2_3", 2},
              {"ENCAP_LAYER2_3", 3},
              {"ENCAP_LAYER3_4", 4},
              {"VLAN_SRCMAC", 5}}},
            {wire::Bond_LACP_Rate_descriptor(), {{"SLOW", 0}, {"FAST", 1}}},
            {wire::Bond_LACP_SelectionLogic_descriptor(),
             {{"STABLE", 0}, {"BANDWIDTH", 1}, {"COUNT", 2}}},
            {wire::VLAN_Protocol_descriptor(), {{"CVLAN", 0}, {"SVLAN", 1}}},
            {wire::IPv6Autoconfig_Privacy_descriptor(),
             {{"DISABLE", 0}, {"AVOID", 1}, {"PREFER", 2}}},
        };
    for (const auto& [e, values] : enums) {
        SCOPED_TRACE(e->full_name());
        EXPECT_EQ(e->value_count(), static_cast<int>(values.size()));
        for (const auto& [name, number] : values) {
            const auto* v = e->FindValueByName(name);
            ASSERT_NE(v, nullptr) << name;
            EXPECT_EQ(v->number(), number) << name;
        }
    }
}

}  // namespace
}  // namespace activate
