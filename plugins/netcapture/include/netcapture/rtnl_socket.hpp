// A NETLINK_ROUTE socket in the calling thread's network namespace that returns dump replies as
// raw bytes, exactly as a recorded dump file holds them, so that live and recorded captures share
// one decoder (decode_rtnl_dump).
#pragma once

#include <activate/fd.hpp>
#include <activate/result.hpp>
#include <cstdint>
#include <string>

namespace activate::netcapture {

class RtnlSocket {
  public:
    // The kernel sizes a dump's datagrams after the largest buffer the socket has received into,
    // up to 32 KiB (netlink_recvmsg() and netlink_dump() in net/netlink/af_netlink.c), unless one
    // message alone needs more (min_dump_alloc); 64 KiB holds any datagram of the dumps sent here.
    static constexpr size_t kDefaultReceiveBuffer = 64 * 1024;

    // `receive_buffer` is the datagram size limit; a larger datagram fails the dump with an
    // error naming both sizes (smaller values are for tests).
    static Result<RtnlSocket> open(size_t receive_buffer = kDefaultReceiveBuffer);

    // Sends an AF_UNSPEC dump request (RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE) and returns
    // every reply message up to and including NLMSG_DONE (or NLMSG_ERROR), concatenated.
    Result<std::string> dump(uint16_t request_type);

    // recv(2) calls made so far, one per datagram (the capture benchmark and tests count them).
    size_t receive_calls() const { return receive_calls_; }

  private:
    RtnlSocket(UniqueFd fd, uint32_t port_id, size_t receive_buffer)
        : fd_(std::move(fd)), port_id_(port_id), buffer_(receive_buffer, '\0') {}

    UniqueFd fd_;
    uint32_t port_id_ = 0;
    uint32_t seq_ = 0;
    std::string buffer_;
    size_t receive_calls_ = 0;
};

}  // namespace activate::netcapture
