-- The IPsec tunnel between the cloud VPC and on-premises: a piece of the
-- exercise's lab script. gw_cloud and gw_onprem are the two gateways.
--
--   VPC 198.19.10.0/24 -- gw_cloud 198.18.1.1 == internet == 198.18.2.1 gw_onprem -- on-prem 198.19.20.0/24
ipsec {
  left = gw_cloud, right = gw_onprem,
  left_address = "198.18.1.1", right_address = "198.18.2.1",
  left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/24",
  mode = "tunnel", cipher = "aes-gcm-128", backend = "strongswan",
}
