# Sourced by guest /init scripts (installed as /etc/vm-lib.sh by build-initramfs.sh).

# Mounts the kernel file systems and loads the modules the image was built with, in order.
vm_setup() {
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mount -t tmpfs tmpfs /run
  mount -t tmpfs tmpfs /tmp
  while read -r m; do
    modprobe "$m" || echo "vm-lib: modprobe $m failed"
  done < /etc/vm-modules
}

# Waits up to $2 seconds (default 10) for a path to appear, e.g. a block device after probing.
vm_wait_for() {
  i=0
  while [ ! -e "$1" ]; do
    i=$((i + 1))
    [ "$i" -gt "$(( ${2:-10} * 10 ))" ] && return 1
    usleep 100000
  done
}

# Ends the run: QEMU runs with -no-reboot, so either way the VM exits.
vm_poweroff() {
  sync
  poweroff -f
}
