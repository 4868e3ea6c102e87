module takedown/services/retraction

go 1.26.0
