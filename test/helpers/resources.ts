// Resource files the control-plane tests feed to the local source: the Service "web" of namespace
// "shop" (port 80, named http) and its EndpointSlice with one address, 127.0.0.1:<port>.
export const WEB_SERVICE = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  ports: [{ name: http, port: 80 }]
`

export const webSlice = (port: number): string => `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: { kubernetes.io/service-name: web }
addressType: IPv4
ports: [{ name: http, port: ${port} }]
endpoints:
  - addresses: [127.0.0.1]
`
