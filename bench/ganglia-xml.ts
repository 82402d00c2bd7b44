// Generates gmond/gmetad XML in the exact shape Ganglia 3.7 prints (formats.md 2.3), for the poller's
// benchmark and tests.

const METRICS: [string, string, string, string][] = [
  ['load_one', 'float', ' ', 'load'],
  ['load_five', 'float', ' ', 'load'],
  ['load_fifteen', 'float', ' ', 'load'],
  ['cpu_user', 'float', '%', 'cpu'],
  ['cpu_system', 'float', '%', 'cpu'],
  ['cpu_idle', 'float', '%', 'cpu'],
  ['cpu_wio', 'float', '%', 'cpu'],
  ['cpu_nice', 'float', '%', 'cpu'],
  ['cpu_aidle', 'float', '%', 'cpu'],
  ['cpu_steal', 'float', '%', 'cpu'],
  ['cpu_num', 'uint16', 'CPUs', 'cpu'],
  ['cpu_speed', 'uint32', 'MHz', 'cpu'],
  ['mem_total', 'float', 'KB', 'memory'],
  ['mem_free', 'float', 'KB', 'memory'],
  ['mem_shared', 'float', 'KB', 'memory'],
  ['mem_buffers', 'float', 'KB', 'memory'],
  ['mem_cached', 'float', 'KB', 'memory'],
  ['swap_free', 'float', 'KB', 'memory'],
  ['swap_total', 'float', 'KB', 'memory'],
  ['bytes_in', 'float', 'bytes/sec', 'network'],
  ['bytes_out', 'float', 'bytes/sec', 'network'],
  ['pkts_in', 'float', 'packets/sec', 'network'],
  ['pkts_out', 'float', 'packets/sec', 'network'],
  ['disk_total', 'double', 'GB', 'disk'],
  ['disk_free', 'double', 'GB', 'disk'],
  ['part_max_used', 'float', '%', 'disk'],
  ['proc_run', 'uint32', ' ', 'process'],
  ['proc_total', 'uint32', ' ', 'process'],
  ['boottime', 'uint32', 's', 'system'],
  ['os_name', 'string', '', 'system'],
  ['os_release', 'string', '', 'system'],
  ['machine_type', 'string', '', 'system'],
  ['mtu', 'uint32', '', 'network'],
  ['vm_count', 'uint32', 'VMs', 'xen'],
  ['xen_free_mem', 'float', 'MiB', 'xen'],
  ['xen_total_mem', 'float', 'MiB', 'xen'],
  ['dom0_cpu', 'float', '%', 'xen'],
  ['xen_version', 'string', '', 'xen'],
  ['cpu_intr', 'float', '%', 'cpu'],
  ['cpu_sintr', 'float', '%', 'cpu'],
];

export function gangliaXml(
  hosts: number,
  metricsPerHost = 40,
  source: 'gmond' | 'gmetad' = 'gmetad',
  now = 1795562973,
): string {
  const out: string[] = ['<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>'];
  out.push(
    `<!DOCTYPE GANGLIA_XML [\n   <!ELEMENT GANGLIA_XML (GRID|CLUSTER|HOST)*>\n      <!ATTLIST GANGLIA_XML VERSION CDATA #REQUIRED>\n]>`,
  );
  out.push(`<GANGLIA_XML VERSION="3.7.2" SOURCE="${source}">`);
  if (source === 'gmetad') out.push(`<GRID NAME="site" AUTHORITY="http://127.0.0.1/ganglia/" LOCALTIME="${now}">`);
  out.push(`<CLUSTER NAME="xen" LOCALTIME="${now}" OWNER="unspecified" LATLONG="unspecified" URL="unspecified">`);
  for (let h = 0; h < hosts; h++) {
    const name = `xen${String(h).padStart(4, '0')}`;
    out.push(
      `<HOST NAME="${name}" IP="10.${h >> 8}.${h & 255}.1" REPORTED="${now - (h % 10)}" TN="${h % 10}" TMAX="20" DMAX="0" LOCATION="unspecified" GMOND_STARTED="${now - 86400}" TAGS="">`,
    );
    for (let m = 0; m < metricsPerHost; m++) {
      const [mn, type, units, group] = METRICS[m % METRICS.length]!;
      const metricName = m < METRICS.length ? mn : `${mn}_${m}`;
      const val = type === 'string' ? 'Linux' : ((h * 7 + m * 13) % 1000) / 10;
      out.push(
        `<METRIC NAME="${metricName}" VAL="${val}" TYPE="${type}" UNITS="${units}" TN="${m % 60}" TMAX="60" DMAX="0" SLOPE="both" SOURCE="gmond">`,
      );
      out.push(
        `<EXTRA_DATA>\n<EXTRA_ELEMENT NAME="GROUP" VAL="${group}"/>\n<EXTRA_ELEMENT NAME="DESC" VAL="${metricName} as gmond reports it"/>\n<EXTRA_ELEMENT NAME="TITLE" VAL="${metricName}"/>\n</EXTRA_DATA>\n</METRIC>`,
      );
    }
    out.push('</HOST>');
  }
  out.push('</CLUSTER>');
  if (source === 'gmetad') out.push('</GRID>');
  out.push('</GANGLIA_XML>');
  return out.join('\n');
}
