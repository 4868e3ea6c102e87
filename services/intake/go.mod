module takedown/services/intake

go 1.26.0
