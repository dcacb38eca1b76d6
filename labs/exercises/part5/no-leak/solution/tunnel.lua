-- The IPsec tunnel between the cloud VPC and on-premises: a piece of the
-- exercise's lab script. gw_cloud and gw_onprem are the two gateways.
--
--   VPC 198.19.10.0/24 -- gw_cloud == internet == gw_onprem -- on-prem 198.19.20.0/24 (op1)
--                                                            and 198.19.21.0/24 (op2)
ipsec {
  left = gw_cloud, right = gw_onprem,
  left_address = "198.18.1.1", right_address = "198.18.2.1",
  left_subnet = "198.19.10.0/24", right_subnet = "198.19.20.0/23", -- covers both on-prem subnets
  mode = "tunnel", cipher = "aes-gcm-128", backend = "strongswan",
}
