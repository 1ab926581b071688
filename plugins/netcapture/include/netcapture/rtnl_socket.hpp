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
    static Result<RtnlSocket> open();

    // Sends an AF_UNSPEC dump request (RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE) and returns
    // every reply message up to and including NLMSG_DONE (or NLMSG_ERROR), concatenated.
    Result<std::string> dump(uint16_t request_type);

  private:
    RtnlSocket(UniqueFd fd, uint32_t port_id) : fd_(std::move(fd)), port_id_(port_id) {}

    UniqueFd fd_;
    uint32_t port_id_ = 0;
    uint32_t seq_ = 0;
};

}  // namespace activate::netcapture
